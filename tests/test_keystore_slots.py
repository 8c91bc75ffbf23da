"""One keystore slot per admin: any admin unlocks, slots follow the accounts, version 1
files (one owner-less slot) still open and are named on the admin's first login."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongroom.identity import (
    Keystore,
    KeystoreCorrupt,
    LastPassphraseSlot,
    WrongPassphrase,
)
from support.argon import ArgonLimits

FAST: ArgonLimits = {"opslimit": 1, "memlimit": 8192}
ENTROPY = bytes(range(32))
CLAIRE = "Claire, secret professionnel 1"
BRUNO = "Bruno garde les clés 2"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keystore.json"


@pytest.fixture
def two_admins(path: Path) -> Keystore:
    store = Keystore.create(path, ENTROPY, CLAIRE, owner="claire", **FAST)
    store.set_passphrase(ENTROPY, "bruno", BRUNO)
    return store


def as_version_1(path: Path) -> None:
    """Rewrite the file as the version 1 format wrote it: one slot, no owner field."""
    body = json.loads(path.read_bytes())
    body["version"] = 1
    for slot in body["slots"]:
        slot.pop("owner", None)
    path.write_text(json.dumps(body))


def test_every_admin_unlocks_with_their_own_passphrase(two_admins: Keystore, path: Path) -> None:
    rebooted = Keystore(path)
    assert rebooted.owners == ["claire", "bruno"]
    assert rebooted.unlock(BRUNO) == ENTROPY
    assert rebooted.unlock(CLAIRE) == ENTROPY
    assert rebooted.unlock(BRUNO, owner="bruno") == ENTROPY
    # A name that has no slot (mistyped) still tries every slot.
    assert rebooted.unlock(BRUNO, owner="brunoo") == ENTROPY
    with pytest.raises(WrongPassphrase):
        rebooted.unlock("nobody's passphrase")
    # Claire's passphrase does not open Bruno's slot when his is the one named.
    with pytest.raises(WrongPassphrase):
        rebooted.unlock(CLAIRE, owner="bruno")


def test_removing_an_admin_removes_their_slot_but_never_the_last(
    two_admins: Keystore, path: Path
) -> None:
    assert two_admins.remove_passphrase("bruno")
    with pytest.raises(WrongPassphrase):
        Keystore(path).unlock(BRUNO)
    before = path.read_bytes()
    with pytest.raises(LastPassphraseSlot):
        two_admins.remove_passphrase("claire")
    assert path.read_bytes() == before
    assert Keystore(path).unlock(CLAIRE) == ENTROPY
    assert not two_admins.remove_passphrase("nobody")


def test_reset_reseals_only_that_admins_slot(two_admins: Keystore, path: Path) -> None:
    two_admins.set_passphrase(ENTROPY, "bruno", "Nouvelle phrase de Bruno 3")
    assert Keystore(path).owners == ["claire", "bruno"]
    with pytest.raises(WrongPassphrase):
        Keystore(path).unlock(BRUNO)
    assert Keystore(path).unlock("Nouvelle phrase de Bruno 3") == ENTROPY
    assert Keystore(path).unlock(CLAIRE) == ENTROPY
    with pytest.raises(ValueError):
        two_admins.set_passphrase(bytes(32), "mallory", "Une autre identité 4")


def test_change_own_passphrase_reseals_own_slot(two_admins: Keystore, path: Path) -> None:
    with pytest.raises(WrongPassphrase):
        two_admins.change_passphrase("wrong", "Claire nouvelle 5", owner="claire")
    two_admins.change_passphrase(CLAIRE, "Claire nouvelle 5", owner="claire")
    assert Keystore(path).unlock("Claire nouvelle 5", owner="claire") == ENTROPY
    assert Keystore(path).unlock(BRUNO) == ENTROPY
    assert Keystore(path).owners == ["claire", "bruno"]


def test_version_1_file_opens_and_its_slot_is_named_on_first_login(path: Path) -> None:
    Keystore.create(path, ENTROPY, CLAIRE, **FAST)
    as_version_1(path)
    old = Keystore(path)
    assert old.owners == [""]
    assert old.unlock(CLAIRE, owner="claire") == ENTROPY
    # The wrong admin cannot claim it; the right one names it, and the file becomes v2.
    assert not old.claim("bruno", BRUNO)
    assert old.claim("claire", CLAIRE)
    body = json.loads(path.read_bytes())
    assert body["version"] == 2
    assert [s["owner"] for s in body["slots"]] == ["claire"]
    assert not old.claim("claire", CLAIRE)  # already named: nothing to do
    old.set_passphrase(ENTROPY, "bruno", BRUNO)
    assert Keystore(path).unlock(BRUNO) == ENTROPY


def test_a_version_1_file_with_two_passphrase_slots_is_corrupt(path: Path) -> None:
    Keystore.create(path, ENTROPY, CLAIRE, owner="claire", **FAST).set_passphrase(
        ENTROPY, "bruno", BRUNO
    )
    as_version_1(path)
    with pytest.raises(KeystoreCorrupt):
        Keystore(path).unlock(CLAIRE)
