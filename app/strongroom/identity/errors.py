"""Keystore failures, one class per thing the caller can do something about."""

from __future__ import annotations


class KeystoreError(Exception):
    """Base class: the sealed identity could not be read or written."""


class KeystoreMissing(KeystoreError):
    """No keystore file: the box has no identity yet (first-run wizard) or the disk is wrong."""


class KeystoreExists(KeystoreError):
    """Refusing to create a keystore over an existing one: that would destroy an identity."""


class KeystoreCorrupt(KeystoreError):
    """The file is unreadable, malformed, or its contents do not belong together."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open the passphrase slot (nothing was changed)."""


class NoKeyfileSlot(KeystoreError):
    """The keystore has no keyfile slot: unattended unlock is not configured."""


class KeyfileMissing(KeystoreError):
    """The keyfile is not there (USB key not inserted?) or cannot be read."""


class WrongKeyfile(KeystoreError):
    """The keyfile does not open the keyfile slot (another box's key, or damaged)."""


class LastPassphraseSlot(KeystoreError):
    """Refusing to remove the only passphrase slot: nobody could unlock the box any more."""
