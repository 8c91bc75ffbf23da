"""Turning the sealed identity into the box's keys, in either unlock mode."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from strongroom.config import BoxConfig
from strongroom.identity import BoxKeys, Keystore, derive_box_keys
from strongroom.identity.atomic_file import write_atomically


class BoxPhase(enum.Enum):
    UNINITIALISED = "uninitialised"  # no identity yet: the first-run wizard
    LOCKED = "locked"  # identity sealed: waiting for the admin passphrase
    # Keys accepted, the archive's schema being migrated in a worker thread (after an
    # upgrade; minutes on a Pi): the web UI, panel and watchdog keep running meanwhile.
    UPDATING = "updating"
    READY = "ready"  # unlocked: archive open, phones served


def phase_on_disk(config: BoxConfig) -> BoxPhase:
    return BoxPhase.LOCKED if Keystore.exists(config.keystore_path) else BoxPhase.UNINITIALISED


def keys_from_passphrase(config: BoxConfig, passphrase: str, owner: str | None = None) -> BoxKeys:
    """Any admin's passphrase (`owner`'s slot tried first). Raise identity.WrongPassphrase /
    KeystoreMissing / KeystoreCorrupt on failure."""
    return derive_box_keys(Keystore(config.keystore_path).unlock(passphrase, owner))


def keys_from_keyfile(config: BoxConfig) -> BoxKeys:
    """Unattended mode: the key file on the USB key (or bound to the Pi) opens the keystore."""
    keyfile = read_unlock_choice(config).keyfile
    if keyfile is None:
        raise ValueError("unattended unlock needs a key file (wizard or unlock_keyfile)")
    return derive_box_keys(Keystore(config.keystore_path).unlock_with_keyfile(keyfile))


# -- the unlock mode chosen in the wizard ---------------------------------------------------
#
# box.toml may live on a read-only /etc (ProtectSystem=strict), so the choice
# made in the wizard is kept in the data directory and overrides box.toml.

UNLOCK_CHOICE_FILE = "unlock.json"
DEFAULT_KEYFILE = Path("/media/strongroom-key/unlock.key")


@dataclass(frozen=True)
class UnlockChoice:
    mode: str  # "attended" | "unattended"
    keyfile: Path | None


def read_unlock_choice(config: BoxConfig) -> UnlockChoice:
    """The unlock mode in force: the wizard's choice if any, else box.toml's."""
    path = config.data_dir / UNLOCK_CHOICE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UnlockChoice(config.unlock_mode, config.unlock_keyfile)
    except (OSError, ValueError):
        # A damaged choice file must not open the box: fall back to attended.
        return UnlockChoice("attended", None)
    mode = raw.get("mode") if isinstance(raw, dict) else None
    keyfile = raw.get("keyfile") if isinstance(raw, dict) else None
    if mode == "unattended" and isinstance(keyfile, str) and keyfile:
        return UnlockChoice("unattended", Path(keyfile))
    return UnlockChoice("attended", None)


def choose_attended(config: BoxConfig) -> None:
    """Passphrase after every reboot; the key-file slot (if any) is removed."""
    keystore = Keystore(config.keystore_path)
    if keystore.has_keyfile_slot:
        keystore.remove_keyfile_slot()
    write_atomically(
        config.data_dir / UNLOCK_CHOICE_FILE, json.dumps({"mode": "attended"}).encode()
    )


def choose_unattended(config: BoxConfig, passphrase: str, keyfile: Path) -> None:
    """Seal the identity a second time under a key file (on a USB key) for unattended boots.

    The admin passphrase is asked again: turning this on weakens the box
    (whoever has the box and the USB key has the archive), so it takes the
    same proof as unlocking. Raises WrongPassphrase, or OSError if the key
    file cannot be written (USB key not mounted).
    """
    keystore = Keystore(config.keystore_path)
    entropy = keystore.unlock(passphrase)
    if keystore.has_keyfile_slot:
        keystore.remove_keyfile_slot()
    keystore.add_keyfile_slot(entropy, keyfile)
    write_atomically(
        config.data_dir / UNLOCK_CHOICE_FILE,
        json.dumps({"mode": "unattended", "keyfile": str(keyfile)}).encode(),
    )
