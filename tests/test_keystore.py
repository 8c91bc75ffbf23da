"""The sealed keystore: unlock modes, failures that leave the file alone, atomic writes."""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from strongroom.identity import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    KeyfileMissing,
    Keystore,
    KeystoreCorrupt,
    KeystoreExists,
    KeystoreMissing,
    NoKeyfileSlot,
    WrongKeyfile,
    WrongPassphrase,
    derive_box_keys,
)
from support.argon import ArgonLimits

# The smallest Argon2id cost libsodium allows: keeps the tests fast, same code path.
FAST: ArgonLimits = {"opslimit": 1, "memlimit": 8192}
ENTROPY = bytes(range(32))
OTHER_ENTROPY = bytes(range(1, 33))
PASSPHRASE = "Secret professionnel, article 226-13"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "keystore.json"


@pytest.fixture
def store(store_path: Path) -> Keystore:
    return Keystore.create(store_path, ENTROPY, PASSPHRASE, **FAST)


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- create and attended unlock -------------------------------------------------------


def test_create_then_unlock_with_passphrase(store: Keystore, store_path: Path) -> None:
    assert Keystore.exists(store_path)
    assert store.unlock(PASSPHRASE) == ENTROPY
    # A fresh object (after a reboot) opens the same file.
    assert Keystore(store_path).unlock(PASSPHRASE) == ENTROPY


def test_file_is_private_versioned_json_without_secrets(store: Keystore, store_path: Path) -> None:
    assert mode_of(store_path) == 0o600
    raw = store_path.read_bytes()
    body = json.loads(raw)
    assert body["format"] == "strongroom-keystore"
    assert body["version"] == 2
    assert [slot["type"] for slot in body["slots"]] == ["passphrase"]
    assert PASSPHRASE.encode() not in raw
    assert ENTROPY not in raw and ENTROPY.hex().encode() not in raw


def test_fingerprint_is_readable_while_locked(store: Keystore, store_path: Path) -> None:
    assert Keystore(store_path).fingerprint == derive_box_keys(ENTROPY).fingerprint


def test_wrong_passphrase_leaves_file_byte_identical(store: Keystore, store_path: Path) -> None:
    before = store_path.read_bytes()
    for attempt in ("", "secret professionnel, article 226-13", PASSPHRASE + " "):
        with pytest.raises(WrongPassphrase):
            store.unlock(attempt)
    with pytest.raises(WrongPassphrase):
        store.change_passphrase("not it", "new passphrase")
    assert store_path.read_bytes() == before
    assert files_in(store_path.parent) == {"keystore.json"}


def test_passphrase_unicode_normal_form_does_not_matter(store_path: Path) -> None:
    passphrase = "Clé d'accès à l'étude"
    Keystore.create(store_path, ENTROPY, unicodedata.normalize("NFC", passphrase), **FAST)
    assert Keystore(store_path).unlock(unicodedata.normalize("NFD", passphrase)) == ENTROPY


def test_create_refuses_to_overwrite_an_identity(store: Keystore, store_path: Path) -> None:
    before = store_path.read_bytes()
    with pytest.raises(KeystoreExists):
        Keystore.create(store_path, OTHER_ENTROPY, "another", **FAST)
    assert store_path.read_bytes() == before


def test_create_refuses_an_empty_passphrase(store_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        Keystore.create(store_path, ENTROPY, "", **FAST)
    assert not store_path.exists()


def test_missing_keystore(store_path: Path) -> None:
    assert not Keystore.exists(store_path)
    with pytest.raises(KeystoreMissing):
        Keystore(store_path).unlock(PASSPHRASE)
    with pytest.raises(KeystoreMissing):
        _ = Keystore(store_path).fingerprint


def test_change_passphrase(store: Keystore, store_path: Path) -> None:
    store.change_passphrase(PASSPHRASE, "nouvelle phrase secrète")
    with pytest.raises(WrongPassphrase):
        store.unlock(PASSPHRASE)
    assert Keystore(store_path).unlock("nouvelle phrase secrète") == ENTROPY
    assert mode_of(store_path) == 0o600
    assert files_in(store_path.parent) == {"keystore.json"}


def test_argon2id_limits_are_recorded_and_used(store_path: Path) -> None:
    Keystore.create(store_path, ENTROPY, PASSPHRASE, opslimit=2, memlimit=16384)
    slot = json.loads(store_path.read_bytes())["slots"][0]
    assert (slot["kdf"], slot["opslimit"], slot["memlimit"]) == ("argon2id", 2, 16384)
    # Unlock reads the limits from the file, not from the caller's defaults.
    assert Keystore(store_path).unlock(PASSPHRASE) == ENTROPY


# --- unattended unlock: keyfile slot --------------------------------------------------


def test_keyfile_slot_created_and_unlocks(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "usb" / "strongroom.key"
    keyfile.parent.mkdir()
    store.add_keyfile_slot(ENTROPY, keyfile)
    assert keyfile.stat().st_size == 32
    assert mode_of(keyfile) == 0o600
    assert store.has_keyfile_slot
    assert Keystore(store.path).unlock_with_keyfile(keyfile) == ENTROPY
    # The passphrase slot still works.
    assert store.unlock(PASSPHRASE) == ENTROPY
    assert files_in(keyfile.parent) == {"strongroom.key"}
    assert files_in(store.path.parent) == {"keystore.json", "usb"}


def test_existing_keyfile_is_reused_not_replaced(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "bound.key"
    keyfile.write_bytes(bytes([7]) * 32)
    store.add_keyfile_slot(ENTROPY, keyfile)
    assert keyfile.read_bytes() == bytes([7]) * 32
    assert store.unlock_with_keyfile(keyfile) == ENTROPY


def test_wrong_or_damaged_keyfile(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "a.key"
    store.add_keyfile_slot(ENTROPY, keyfile)
    before = store.path.read_bytes()
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    with pytest.raises(WrongKeyfile):
        store.unlock_with_keyfile(other)
    truncated = tmp_path / "truncated.key"
    truncated.write_bytes(keyfile.read_bytes()[:31])
    with pytest.raises(WrongKeyfile):
        store.unlock_with_keyfile(truncated)
    with pytest.raises(KeyfileMissing):
        store.unlock_with_keyfile(tmp_path / "usb-not-inserted.key")
    assert store.path.read_bytes() == before


def test_no_keyfile_slot(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "k.key"
    keyfile.write_bytes(bytes(32))
    assert not store.has_keyfile_slot
    with pytest.raises(NoKeyfileSlot):
        store.unlock_with_keyfile(keyfile)


def test_remove_keyfile_slot(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "k.key"
    store.add_keyfile_slot(ENTROPY, keyfile)
    store.remove_keyfile_slot()
    assert not store.has_keyfile_slot
    with pytest.raises(NoKeyfileSlot):
        store.unlock_with_keyfile(keyfile)
    assert keyfile.exists()  # lives on the USB key: the owner decides
    assert store.unlock(PASSPHRASE) == ENTROPY


def test_change_passphrase_keeps_the_keyfile_slot(store: Keystore, tmp_path: Path) -> None:
    keyfile = tmp_path / "k.key"
    store.add_keyfile_slot(ENTROPY, keyfile)
    store.change_passphrase(PASSPHRASE, "autre")
    assert store.unlock_with_keyfile(keyfile) == ENTROPY


def test_keyfile_slot_refuses_another_identity(store: Keystore, tmp_path: Path) -> None:
    before = store.path.read_bytes()
    with pytest.raises(ValueError, match="not the identity"):
        store.add_keyfile_slot(OTHER_ENTROPY, tmp_path / "k.key")
    assert store.path.read_bytes() == before


# --- corrupt and tampered files -------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"{ truncated",
        b"[]",
        b'{"format": "something-else", "version": 1}',
    ],
)
def test_unparseable_file_is_corrupt(store_path: Path, content: bytes) -> None:
    store_path.write_bytes(content)
    with pytest.raises(KeystoreCorrupt):
        Keystore(store_path).unlock(PASSPHRASE)
    assert store_path.read_bytes() == content


Edit = Callable[[dict[str, Any]], object]


def edit(path: Path, change: Edit) -> None:
    body = json.loads(path.read_bytes())
    change(body)
    path.write_text(json.dumps(body))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.update(version=3),
        lambda b: b.pop("fingerprint"),
        lambda b: b.update(slots=[]),
        lambda b: b["slots"].append(dict(b["slots"][0])),
        lambda b: b["slots"].append({"type": "tpm"}),
        lambda b: b["slots"][0].update(salt="zz" * 16),
        lambda b: b["slots"][0].update(box=b["slots"][0]["box"][:-2]),
        lambda b: b["slots"][0].update(kdf="scrypt"),
        lambda b: b["slots"][0].update(opslimit="3"),
        lambda b: b["slots"][0].update(memlimit=64 * 1024**3),  # would allocate 64 GiB
        lambda b: b["slots"][0].update(opslimit=10**6),
    ],
    ids=[
        "version",
        "no-fingerprint",
        "no-slots",
        "two-slots-same-owner",
        "unknown-slot",
        "bad-hex",
        "short-box",
        "unknown-kdf",
        "string-limit",
        "huge-memlimit",
        "huge-opslimit",
    ],
)
def test_malformed_keystore_is_corrupt(store: Keystore, store_path: Path, change: Edit) -> None:
    edit(store_path, change)
    with pytest.raises(KeystoreCorrupt):
        store.unlock(PASSPHRASE)


def test_edited_fingerprint_is_caught_at_unlock(store: Keystore, store_path: Path) -> None:
    edit(store_path, lambda b: b.update(fingerprint="0000-0000-0000-0000-0000-0000-0000-0000"))
    with pytest.raises(KeystoreCorrupt, match="fingerprint"):
        store.unlock(PASSPHRASE)


def test_slot_copied_from_another_box_is_caught(store: Keystore, tmp_path: Path) -> None:
    other_path = tmp_path / "other.json"
    Keystore.create(other_path, OTHER_ENTROPY, PASSPHRASE, **FAST)
    other_slot = json.loads(other_path.read_bytes())["slots"][0]
    edit(store.path, lambda b: b.update(slots=[other_slot]))
    with pytest.raises(KeystoreCorrupt):
        store.unlock(PASSPHRASE)


def test_flipped_ciphertext_bit_does_not_open(store: Keystore, store_path: Path) -> None:
    def flip(body: dict[str, Any]) -> None:
        box = bytearray.fromhex(body["slots"][0]["box"])
        box[-1] ^= 1
        body["slots"][0]["box"] = box.hex()

    edit(store_path, flip)
    # Indistinguishable from a wrong passphrase without the key: never returns entropy.
    with pytest.raises(WrongPassphrase):
        store.unlock(PASSPHRASE)


# --- atomic writes --------------------------------------------------------------------


def test_failed_replace_keeps_old_file_and_leaves_no_temporary(
    store: Keystore, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store_path.read_bytes()

    def power_cut(src: str, dst: str) -> None:
        raise OSError("simulated failure during rename")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="simulated"):
        store.change_passphrase(PASSPHRASE, "new one")
    assert store_path.read_bytes() == before
    assert files_in(store_path.parent) == {"keystore.json"}
    monkeypatch.undo()
    assert store.unlock(PASSPHRASE) == ENTROPY


def test_writes_go_through_a_temporary_file_in_the_same_directory(
    store: Keystore, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(src: str, dst: str) -> None:
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    store.change_passphrase(PASSPHRASE, "new one")
    assert len(renames) == 1
    src, dst = renames[0]
    assert dst == store_path
    assert src.parent == store_path.parent and src != store_path
    assert files_in(store_path.parent) == {"keystore.json"}


def test_default_argon2id_limits_are_the_documented_ones(store_path: Path) -> None:
    Keystore.create(store_path, ENTROPY, PASSPHRASE)
    slot = json.loads(store_path.read_bytes())["slots"][0]
    assert (slot["opslimit"], slot["memlimit"]) == (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT)
    assert (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT) == (3, 64 * 1024 * 1024)
    assert Keystore(store_path).unlock(PASSPHRASE) == ENTROPY


def test_create_never_replaces_a_file_that_appears_meanwhile(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process creates the keystore between the existence check and the write.
    monkeypatch.setattr(Keystore, "exists", staticmethod(lambda path: False))
    Keystore.create(store_path, ENTROPY, PASSPHRASE, **FAST)
    before = store_path.read_bytes()
    with pytest.raises(KeystoreExists):
        Keystore.create(store_path, OTHER_ENTROPY, "another", **FAST)
    assert store_path.read_bytes() == before
    assert files_in(store_path.parent) == {"keystore.json"}
