"""The identity entropy at rest: a keystore file sealed under the admin passphrase.

Two ways to unlock after a reboot (docs/identity.md weighs them):
- attended: the admin types the passphrase in the web UI (`unlock`);
- unattended: a 32-byte keyfile on a removable USB key opens a second slot
  (`unlock_with_keyfile`).

Every write replaces the whole file atomically (mode 0600). Reads never write, so a wrong
passphrase or keyfile leaves the file byte-identical. Passphrases are never logged.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from pathlib import Path

import nacl.utils

from . import keystore_format as fmt
from .atomic_file import write_atomically
from .errors import (
    KeyfileMissing,
    KeystoreCorrupt,
    KeystoreExists,
    KeystoreMissing,
    NoKeyfileSlot,
    WrongKeyfile,
)
from .keys import derive_box_keys

StrPath = str | os.PathLike[str]


class Keystore:
    """A keystore file at `path`. Limits apply to slots sealed by this object."""

    def __init__(
        self,
        path: StrPath,
        *,
        opslimit: int = fmt.DEFAULT_OPSLIMIT,
        memlimit: int = fmt.DEFAULT_MEMLIMIT,
    ) -> None:
        self._path = Path(path)
        self._opslimit = opslimit
        self._memlimit = memlimit

    @classmethod
    def create(
        cls,
        path: StrPath,
        entropy: bytes,
        passphrase: str,
        *,
        opslimit: int = fmt.DEFAULT_OPSLIMIT,
        memlimit: int = fmt.DEFAULT_MEMLIMIT,
    ) -> Keystore:
        """Seal `entropy` under `passphrase` in a new file; never overwrites an identity."""
        keystore = cls(path, opslimit=opslimit, memlimit=memlimit)
        if keystore.exists(keystore.path):
            raise KeystoreExists(f"a keystore already exists at {keystore.path}")
        document = fmt.KeystoreDocument(
            fingerprint=derive_box_keys(entropy).fingerprint,
            passphrase_slot=fmt.seal_with_passphrase(
                entropy, passphrase, opslimit=opslimit, memlimit=memlimit
            ),
        )
        try:
            write_atomically(keystore.path, fmt.encode(document), exclusive=True)
        except FileExistsError:  # created by someone else since the check above
            raise KeystoreExists(f"a keystore already exists at {keystore.path}") from None
        return keystore

    @staticmethod
    def exists(path: StrPath) -> bool:
        return Path(path).is_file()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def fingerprint(self) -> str:
        """The box's public fingerprint, readable while locked (as written in the file)."""
        return self._read().fingerprint

    @property
    def has_keyfile_slot(self) -> bool:
        return self._read().keyfile_slot is not None

    def unlock(self, passphrase: str) -> bytes:
        """The entropy, or WrongPassphrase. Does not write."""
        document = self._read()
        entropy = fmt.open_passphrase_slot(document.passphrase_slot, passphrase)
        return self._verified(document, entropy)

    def unlock_with_keyfile(self, keyfile_path: StrPath) -> bytes:
        """The entropy from the keyfile slot: NoKeyfileSlot, KeyfileMissing or WrongKeyfile."""
        document = self._read()
        if document.keyfile_slot is None:
            raise NoKeyfileSlot(f"{self._path} has no keyfile slot")
        entropy = fmt.open_keyfile_slot(document.keyfile_slot, _read_keyfile(Path(keyfile_path)))
        return self._verified(document, entropy)

    def add_keyfile_slot(self, entropy: bytes, keyfile_path: StrPath) -> None:
        """Seal `entropy` under the keyfile (created 0600 with 32 random bytes if absent).

        Replaces an existing keyfile slot. `entropy` must be this box's (checked against
        the fingerprint), so a slot can never smuggle in another identity.
        """
        document = self._read()
        if derive_box_keys(entropy).fingerprint != document.fingerprint:
            raise ValueError("this entropy is not the identity sealed in this keystore")
        keyfile_path = Path(keyfile_path)
        if not keyfile_path.exists():
            # Written before the slot: a crash in between leaves a keyfile a retry reuses.
            # Not exclusive: USB keys are often FAT, which has no hard links.
            write_atomically(keyfile_path, nacl.utils.random(fmt.KEYFILE_BYTES))
        keyfile = _read_keyfile(keyfile_path)
        slot = fmt.seal_with_keyfile(entropy, keyfile)
        self._write(dataclasses.replace(document, keyfile_slot=slot))

    def remove_keyfile_slot(self) -> None:
        """Back to attended unlock only. The keyfile itself is left where it is."""
        document = self._read()
        if document.keyfile_slot is not None:
            self._write(dataclasses.replace(document, keyfile_slot=None))

    def change_passphrase(self, old: str, new: str) -> None:
        """Re-seal under `new`, fresh salt; WrongPassphrase (file untouched) if `old` fails."""
        entropy = self.unlock(old)
        document = self._read()
        slot = fmt.seal_with_passphrase(
            entropy, new, opslimit=self._opslimit, memlimit=self._memlimit
        )
        self._write(dataclasses.replace(document, passphrase_slot=slot))

    def _read(self) -> fmt.KeystoreDocument:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            raise KeystoreMissing(f"no keystore at {self._path}") from None
        except IsADirectoryError:
            raise KeystoreCorrupt(f"{self._path} is a directory") from None
        return fmt.decode(raw)

    def _write(self, document: fmt.KeystoreDocument) -> None:
        write_atomically(self._path, fmt.encode(document), mode=0o600)

    @staticmethod
    def _verified(document: fmt.KeystoreDocument, entropy: bytes) -> bytes:
        # SecretBox has no associated data: the clear fingerprint is bound to the sealed
        # entropy here instead, so an edited fingerprint or a slot from another box shows.
        actual = derive_box_keys(entropy).fingerprint
        if not hmac.compare_digest(actual.encode(), document.fingerprint.encode()):
            raise KeystoreCorrupt("the sealed identity does not match the keystore fingerprint")
        return entropy


def _read_keyfile(path: Path) -> bytes:
    try:
        keyfile = path.read_bytes()
    except FileNotFoundError:
        raise KeyfileMissing(f"no keyfile at {path}") from None
    except OSError as exc:
        raise KeyfileMissing(f"cannot read keyfile {path}: {exc.strerror}") from None
    if len(keyfile) != fmt.KEYFILE_BYTES:
        raise WrongKeyfile(f"{path} is not a keyfile ({len(keyfile)} bytes, expected 32)")
    return keyfile
