"""Turning the sealed identity into the box's keys, in either unlock mode."""

from __future__ import annotations

import enum

from strongroom.config import BoxConfig
from strongroom.identity import BoxKeys, Keystore, derive_box_keys


class BoxPhase(enum.Enum):
    UNINITIALISED = "uninitialised"  # no identity yet: the first-run wizard
    LOCKED = "locked"  # identity sealed: waiting for the admin passphrase
    READY = "ready"  # unlocked: archive open, phones served


def phase_on_disk(config: BoxConfig) -> BoxPhase:
    return BoxPhase.LOCKED if Keystore.exists(config.keystore_path) else BoxPhase.UNINITIALISED


def keys_from_passphrase(config: BoxConfig, passphrase: str) -> BoxKeys:
    """Raise identity.WrongPassphrase / KeystoreMissing / KeystoreCorrupt on failure."""
    return derive_box_keys(Keystore(config.keystore_path).unlock(passphrase))


def keys_from_keyfile(config: BoxConfig) -> BoxKeys:
    """Unattended mode: the key file on the USB key (or bound to the Pi) opens the keystore."""
    if config.unlock_keyfile is None:
        raise ValueError("unattended unlock needs unlock_keyfile in box.toml")
    return derive_box_keys(
        Keystore(config.keystore_path).unlock_with_keyfile(config.unlock_keyfile)
    )
