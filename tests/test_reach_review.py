"""Remote reach, the review's findings: a paired phone cannot grow the signed log at
will (M3), a restored box does not re-authorise phones revoked since its backup (M4),
and a revoked phone's tor key never outlives its revocation (M5).

Same parts as test_reach_refresh.py: a whole BoxRuntime, the real helper app on its
Unix socket, the reference phone client, and reach_support's tor stand-in.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from e2e_helpers import E2EBox, admin_page, pair_by_qr
from reach_support import auth_file, cli, granted, paired_with_reach, running
from strongroom.archive.store import Txn
from strongroom.client import PhoneClient
from strongroom.office.restore import RESTORED_FROM
from strongroom.reach import grants
from strongroom.reach.keys import ClientAuthKey, service_auth_line
from strongroom.reach.tor_files import TorFiles

__all__ = ["running"]  # the fixture


async def test_a_phone_asking_for_key_after_key_changes_its_key_once_a_minute(
    running: tuple[E2EBox, TorFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    phone, paired = await pair_by_qr(box, "Greedy phone", "greedy")
    await granted(box, paired.device_id)
    held = auth_file(files, paired.device_id)
    link = phone._require_link()
    for _ in range(5):  # no key, then a new key each time: each would be a grant
        reply = (await link.request("reach", {})).body
        assert reply == {"on": True, "onion": box.reach.onion}  # no new key handed out
        other = ClientAuthKey.generate().public_b32
        reply = (await link.request("reach", {"auth_pub": other})).body
        assert reply == {"on": True, "onion": box.reach.onion}
    assert auth_file(files, paired.device_id) == held
    assert box.audit_actions("reach.grant") == ["reach.grant"]
    # Once the minute has passed, a phone that lost its key gets a new one.
    monkeypatch.setattr(grants, "KEY_CHANGE_INTERVAL_S", 0.0)
    reply = (await link.request("reach", {})).body
    await phone.close()
    assert "auth" in reply and auth_file(files, paired.device_id) != held
    assert box.audit_actions("reach.grant") == ["reach.grant", "reach.grant"]


async def mark_restored(box: E2EBox) -> None:
    facts = json.dumps({"set": "old", "tree_size": 1, "restored_at_ms": 1})

    def op(txn: Txn) -> None:
        txn.conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (RESTORED_FROM, facts))

    committer = box.box.committer
    assert committer is not None
    await committer.submit(op)


async def test_a_restored_box_gives_phones_their_keys_on_the_lan_not_at_turn_on(
    running: tuple[E2EBox, TorFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, files = running
    # A restored box is a new run: no phone's key changed in the last minute.
    monkeypatch.setattr(grants, "KEY_CHANGE_INTERVAL_S", 0.0)
    phone, paired = await paired_with_reach(box, "Marc's phone", "marc")
    expected = auth_file(files, paired.device_id)
    await box.reach.turn_off("test")
    # Restored from a backup onto a new Pi: its devices table may list phones revoked
    # since the backup as active. Turning reach on must not hand tor their keys.
    (files.clients_dir / f"device-{paired.device_id}.auth").unlink()
    await mark_restored(box)
    await box.reach.turn_on("test")
    assert files.clients() == []
    assert box.audit_actions("reach.grant") == ["reach.grant"]
    # A phone that is still the office's gets its key back at its next LAN visit.
    lan = PhoneClient(phone.state, keepalive=False)
    await lan.connect(box.peer_url)
    await lan.refresh_reach()
    await lan.close()
    assert auth_file(files, paired.device_id) == expected
    # The dashboard's restore notice says that later revocations must be done again.
    for language, said in (
        ("en", "Phones revoked after this backup's head time are active again"),
        ("fr", "Les téléphones révoqués après l’heure de la tête de cette sauvegarde"),
    ):
        page = await admin_page(box, "/dashboard", language)
        assert 'id="restore-revocations"' in page and said in html.unescape(page)


async def test_a_revoke_racing_the_pairing_leaves_tor_no_key(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    _, paired = await paired_with_reach(box, "Lost phone", "ines")
    # The revoke lands between the pairing's commit and its background authorisation
    # of the key handed out in `paired`: that key must not go into tor after it.
    code, _ = await cli("revoke", str(paired.device_id), "--data", str(box.data_dir))
    assert code == 0 and files.clients() == []
    box.reach.offer(paired.device_id)
    for task in list(box.reach._tasks):
        await task
    assert files.clients() == []


async def test_a_phone_revoked_while_the_helper_is_down_loses_its_tor_key_when_it_is_back(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    lost, gone = await pair_by_qr(box, "Lost phone", "ines")
    await lost.close()
    kept, stays = await pair_by_qr(box, "Kept phone", "marc")
    await kept.close()
    await granted(box, gone.device_id)
    await granted(box, stays.device_id)
    away = tmp_path / "helper.away"
    (tmp_path / "helper.sock").rename(away)  # the helper's unit stopped
    code, _ = await cli("revoke", str(gone.device_id), "--data", str(box.data_dir))
    assert code == 0 and auth_file(files, gone.device_id) is not None
    away.rename(tmp_path / "helper.sock")
    # The next helper contact (here: the other phone's LAN refresh) removes it.
    lan = PhoneClient(kept.state, keepalive=False)
    await lan.connect(box.peer_url)
    await lan.refresh_reach()
    await lan.close()
    assert files.clients() == [f"device-{stays.device_id}"]


async def test_turning_reach_on_removes_keys_of_phones_that_are_not_active(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    _, paired = await paired_with_reach(box, "Marc's phone", "marc")
    await box.reach.turn_off("test")
    # A key left in tor for a phone the archive does not list as active (revoked
    # while the box was stopped and the helper down; or an older tor directory).
    stray = files.clients_dir / "device-999.auth"
    stray.write_text(service_auth_line(ClientAuthKey.generate().public_b32))
    await box.reach.turn_on("test")
    assert files.clients() == [f"device-{paired.device_id}"]
