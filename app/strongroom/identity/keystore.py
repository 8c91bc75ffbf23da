"""The identity entropy at rest: a keystore file sealed under each admin's passphrase.

Two ways to unlock after a reboot (docs/identity.md weighs them):
- attended: any admin types their passphrase in the web UI (`unlock`); each admin has
  their own slot, added and removed with the account, so no single person is needed;
- unattended: a 32-byte keyfile on a removable USB key opens a keyfile slot
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
    LastPassphraseSlot,
    NoKeyfileSlot,
    WrongKeyfile,
    WrongPassphrase,
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
        owner: str = "",
        opslimit: int = fmt.DEFAULT_OPSLIMIT,
        memlimit: int = fmt.DEFAULT_MEMLIMIT,
    ) -> Keystore:
        """Seal `entropy` under `owner`'s passphrase in a new file; never overwrites one."""
        keystore = cls(path, opslimit=opslimit, memlimit=memlimit)
        if keystore.exists(keystore.path):
            raise KeystoreExists(f"a keystore already exists at {keystore.path}")
        slot = fmt.seal_with_passphrase(
            entropy, passphrase, opslimit=opslimit, memlimit=memlimit, owner=owner
        )
        document = fmt.KeystoreDocument(
            fingerprint=derive_box_keys(entropy).fingerprint, passphrase_slots=(slot,)
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

    @property
    def owners(self) -> list[str]:
        """Whose passphrases open the box ("" = a slot whose admin is not known yet)."""
        return self._read().owners()

    def unlock(self, passphrase: str, owner: str | None = None) -> bytes:
        """The entropy, or WrongPassphrase. Does not write.

        With `owner`, that admin's slot is tried (and a slot with no owner yet); if the
        name has no slot every slot is tried (a legacy slot, a mistyped name).
        """
        document = self._read()
        return self._verified(document, _open_any(document, passphrase, owner)[0])

    def set_passphrase(self, entropy: bytes, owner: str, passphrase: str) -> None:
        """Seal `entropy` for `owner` (an admin), replacing their slot if they had one.

        `entropy` must be this box's (checked against the fingerprint), so a slot can
        never smuggle in another identity. Used when an admin is created or reset.
        """
        if not owner:
            raise ValueError("a new passphrase slot needs its admin's username")
        document = self._read()
        self._check_entropy(document, entropy)
        slot = fmt.seal_with_passphrase(
            entropy, passphrase, opslimit=self._opslimit, memlimit=self._memlimit, owner=owner
        )
        others = tuple(s for s in document.passphrase_slots if s.owner != owner)
        self._write(dataclasses.replace(document, passphrase_slots=(*others, slot)))

    def remove_passphrase(self, owner: str) -> bool:
        """Drop `owner`'s slot (their account is removed); LastPassphraseSlot if it is the
        only one left. Returns whether there was a slot."""
        document = self._read()
        kept = tuple(s for s in document.passphrase_slots if s.owner != owner)
        if len(kept) == len(document.passphrase_slots):
            return False
        if not kept:
            raise LastPassphraseSlot("the last passphrase slot cannot be removed")
        self._write(dataclasses.replace(document, passphrase_slots=kept))
        return True

    def claim(self, owner: str, passphrase: str) -> bool:
        """Name the owner-less slot (version 1 files, restores) that `passphrase` opens.

        Called when an admin logs in; does nothing if they already have a slot or the
        passphrase opens no owner-less slot. Returns whether the file changed.
        """
        document = self._read()
        if not owner or owner in document.owners() or "" not in document.owners():
            return False
        unnamed = next(s for s in document.passphrase_slots if s.owner == "")
        try:
            self._verified(document, fmt.open_passphrase_slot(unnamed, passphrase))
        except (WrongPassphrase, KeystoreCorrupt):
            return False
        slots = tuple(
            dataclasses.replace(s, owner=owner) if s is unnamed else s
            for s in document.passphrase_slots
        )
        self._write(dataclasses.replace(document, passphrase_slots=slots))
        return True

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
        self._check_entropy(document, entropy)
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

    def change_passphrase(self, old: str, new: str, owner: str | None = None) -> None:
        """Re-seal the slot `old` opens under `new`, fresh salt; WrongPassphrase (file
        untouched) if `old` opens none. An owner-less slot takes `owner`'s name."""
        document = self._read()
        entropy, opened = _open_any(document, old, owner)
        self._verified(document, entropy)
        name = opened.owner or owner or ""
        slot = fmt.seal_with_passphrase(
            entropy, new, opslimit=self._opslimit, memlimit=self._memlimit, owner=name
        )
        slots = tuple(slot if s is opened else s for s in document.passphrase_slots)
        self._write(dataclasses.replace(document, passphrase_slots=slots))

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
    def _check_entropy(document: fmt.KeystoreDocument, entropy: bytes) -> None:
        if derive_box_keys(entropy).fingerprint != document.fingerprint:
            raise ValueError("this entropy is not the identity sealed in this keystore")

    @staticmethod
    def _verified(document: fmt.KeystoreDocument, entropy: bytes) -> bytes:
        # SecretBox has no associated data: the clear fingerprint is bound to the sealed
        # entropy here instead, so an edited fingerprint or a slot from another box shows.
        actual = derive_box_keys(entropy).fingerprint
        if not hmac.compare_digest(actual.encode(), document.fingerprint.encode()):
            raise KeystoreCorrupt("the sealed identity does not match the keystore fingerprint")
        return entropy


def _open_any(
    document: fmt.KeystoreDocument, passphrase: str, owner: str | None
) -> tuple[bytes, fmt.PassphraseSlot]:
    """The entropy and the slot that opened it; each slot tried costs one Argon2id run."""
    slots = list(document.passphrase_slots)
    if owner is not None:
        mine = [s for s in slots if s.owner == owner]
        if mine:
            slots = mine + [s for s in slots if s.owner == ""]
    for slot in slots:
        try:
            return fmt.open_passphrase_slot(slot, passphrase), slot
        except WrongPassphrase:
            continue
    raise WrongPassphrase("wrong passphrase")


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
