"""Reach refresh (protocol.md §12.2): phones paired before reach, or before a new address,
get it on their next LAN connection instead of being paired again.

The box is a whole BoxRuntime, the helper a real helper app on its Unix socket, the
phone the reference client; tor is the stand-in of reach_support (the onion socket
reached directly). The real Tor network is in test_reach_tor.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import E2EBox, admin_page, message, pair_by_qr, until
from reach_support import (
    ONION,
    auth_file,
    cli,
    granted,
    paired_with_reach,
    running,
    through_onion_socket,
)
from strongroom.client import BoxError, PhoneClient
from strongroom.peer.frames import ErrorCode
from strongroom.reach.keys import public_of, service_auth_line
from strongroom.reach.tor_files import TorFiles

__all__ = ["running"]  # the fixture


def counted(page: str, what: str) -> int:
    return int(page.split(f'id="reach-{what}">', 1)[1].split("<", 1)[0])


async def test_a_phone_paired_before_reach_gets_its_key_on_the_lan_then_reaches_the_onion(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    phone, paired = await pair_by_qr(box, "Claire's phone", "claire")
    await phone.close()
    device = paired.device_id
    assert phone.state.onion is None and phone.state.onion_auth is None  # reach was off

    code, out = await cli("reach", "on", "--data", str(box.data_dir))
    assert code == 0 and "phones to connect once on the office network: 1" in out
    assert "phones holding the current address: 0" in out
    page = await admin_page(box, "/reach")
    assert counted(page, "current") == 0 and counted(page, "waiting") == 1
    assert "Claire&#39;s phone · claire" in page.split('id="reach-waiting-phones"')[1]
    assert files.clients() == []

    # Back in the office: the phone connects on the LAN and asks for reach.
    lan = PhoneClient(phone.state, keepalive=False)
    await lan.connect(box.peer_url)
    await lan.close()
    state = phone.state
    assert state.onion == ONION and state.onion_auth is not None
    # tor holds the public half of the very key the phone got, under its device id.
    assert files.clients() == [f"device-{device}"]
    assert auth_file(files, device) == service_auth_line(public_of(state.onion_auth))
    assert box.audit_actions("reach.") == ["reach.on", "reach.grant"]
    code, out = await cli("reach", "status", "--data", str(box.data_dir))
    assert "phones holding the current address: 1" in out
    assert "phones to connect once on the office network: 0" in out
    page = await admin_page(box, "/reach", "fr")
    assert counted(page, "current") == 1 and counted(page, "waiting") == 0
    assert "Téléphones qui ont l’adresse actuelle et leur clé" in page

    # Out of the office: through the onion, with the key it was given.
    async with through_onion_socket(files.service.onion_socket) as http:
        remote = PhoneClient(state, http=http, keepalive=False)
        await remote.connect(f"ws://{state.onion}/peer")
        ack = await remote.push(message("Depuis le palais", conv="d-1", sender="claire", n=1))
        await remote.close()
    assert not ack.duplicate

    # The next LAN connections change nothing: the phone names its key, which tor holds.
    key = state.onion_auth
    for _ in range(2):
        again = PhoneClient(state, keepalive=False)
        await again.connect(box.peer_url)
        await again.close()
    assert state.onion_auth == key and box.audit_actions("reach.grant") == ["reach.grant"]


async def test_a_rotate_reaches_every_phone_without_pairing_again(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    away, away_paired = await pair_by_qr(box, "Hugo's phone", "hugo")
    await away.close()
    here, here_paired = await pair_by_qr(box, "Inès's phone", "ines")  # stays connected on the LAN
    old = files.onion()
    assert away.state.onion == here.state.onion == old
    keys = (away.state.onion_auth, here.state.onion_auth)
    await granted(box, away_paired.device_id, here_paired.device_id)

    code, out = await cli("reach", "rotate", "--data", str(box.data_dir))
    new = files.onion()
    assert code == 0 and new != old and f"onion address: {new}" in out
    # The phone connected now is told at once (reach_changed), asks, and stores it.
    await until(lambda: here.state.onion == new, what="the connected phone's refresh")
    await here.close()
    status = await box.reach.status()
    assert status["waiting"] == [away_paired.device_id] and len(status["current"]) == 1

    # The other phone learns it at its next LAN connection; its key stays the same.
    lan = PhoneClient(away.state, keepalive=False)
    await lan.connect(box.peer_url)
    await lan.close()
    assert away.state.onion == new
    assert (away.state.onion_auth, here.state.onion_auth) == keys
    assert auth_file(files, away_paired.device_id) == service_auth_line(public_of(keys[0] or ""))
    status = await box.reach.status()
    assert status["waiting"] == [] and len(status["current"]) == 2
    page = await admin_page(box, "/reach")
    assert counted(page, "current") == 2 and counted(page, "waiting") == 0
    async with through_onion_socket(files.service.onion_socket) as http:
        remote = PhoneClient(away.state, http=http, keepalive=False)
        await remote.connect(f"ws://{new}/peer")
        await remote.push(message("Nouvelle adresse", conv="d-2", sender="hugo", n=1))
        await remote.close()
    assert box.audit_actions("reach.") == ["reach.on", "reach.grant", "reach.grant", "reach.rotate"]


async def test_reach_off_is_told_and_on_again_keeps_the_phones_keys(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, _ = running
    await box.reach.turn_on("test")
    phone, _ = await pair_by_qr(box, "Paul's phone", "paul")  # connected throughout
    key = phone.state.onion_auth
    assert phone.state.onion == ONION and key is not None
    await box.reach.turn_off("test")
    await until(lambda: phone.state.onion is None, what="the phone told reach is off")
    assert phone.state.onion_auth == key  # kept: turned on again, tor has it still
    await box.reach.turn_on("test")
    await until(lambda: phone.state.onion == ONION, what="the phone told reach is on")
    await phone.close()
    assert phone.state.onion_auth == key
    assert box.audit_actions("reach.grant") == ["reach.grant"]


async def test_a_box_whose_tor_lost_the_phones_keys_gives_them_back_when_reach_is_turned_on(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    _, paired = await paired_with_reach(box, "Marc's phone", "marc")
    expected = auth_file(files, paired.device_id)
    await box.reach.turn_off("test")
    # A restored box on a new Pi: the archive (and its backup) knows the phone's key,
    # tor's authorized_clients/ does not.
    (files.clients_dir / f"device-{paired.device_id}.auth").unlink()
    await box.reach.turn_on("test")
    assert auth_file(files, paired.device_id) == expected
    assert box.audit_actions("reach.grant") == ["reach.grant", "reach.grant"]


async def test_a_revoked_phone_is_forgotten_and_no_longer_counted(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    _, paired = await paired_with_reach(box, "Lost phone", "ines")
    row = f"reach_phone:{paired.device_id}"
    code, _ = await cli("revoke", str(paired.device_id), "--data", str(box.data_dir))
    assert code == 0 and files.clients() == []
    assert box.count("SELECT count(*) FROM settings WHERE key = ?", row) == 0
    status = await box.reach.status()
    assert status["current"] == [] and status["waiting"] == []
    # A request of this phone that was already past its handshake gives tor nothing.
    assert await box.reach.refresh(paired.device_id, None) == {"on": False}
    assert files.clients() == []
    assert box.count("SELECT count(*) FROM settings WHERE key = ?", row) == 0


async def test_a_helper_that_does_not_answer_gives_no_key_and_the_phone_still_works(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, files = running
    phone, _ = await pair_by_qr(box, "Zoé's phone", "zoe")
    await phone.close()
    await box.reach.turn_on("test")
    files_socket = box.reach.settings.helper_socket
    files_socket.rename(files_socket.with_suffix(".away"))  # the helper's unit stopped
    lan = PhoneClient(phone.state, keepalive=False)
    await lan.connect(box.peer_url)  # the refresh fails quietly; the LAN session works
    with pytest.raises(BoxError) as refused:
        await lan.refresh_reach()
    assert refused.value.code == ErrorCode.UNAVAILABLE
    await lan.push(message("Au bureau", conv="d-4", sender="zoe", n=1))
    await lan.close()
    assert phone.state.onion is None and phone.state.onion_auth is None
    assert files.clients() == [] and box.audit_actions("reach.grant") == []
    files_socket.with_suffix(".away").rename(files_socket)
    lan = PhoneClient(phone.state, keepalive=False)
    await lan.connect(box.peer_url)  # the next LAN connection gets it
    await lan.close()
    assert phone.state.onion == ONION and phone.state.onion_auth is not None


async def test_a_malformed_key_is_refused_and_nothing_changes(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    phone, paired = await pair_by_qr(box, "Odd phone", "odd")
    await granted(box, paired.device_id)
    before = sorted(p.read_text() for p in files.clients_dir.glob("*.auth"))
    link = phone._require_link()
    for bad in ("a" * 52, "A" * 51 + "1"):  # lowercase; a digit base32 lacks
        with pytest.raises(BoxError) as refused:
            await link.request("reach", {"auth_pub": bad})
        assert refused.value.code == ErrorCode.MALFORMED
    ack = await phone.push(message("Toujours là", conv="d-5", sender="odd", n=1))
    await phone.close()
    assert not ack.duplicate
    assert sorted(p.read_text() for p in files.clients_dir.glob("*.auth")) == before


async def test_the_phone_cli_gets_reach_on_the_lan(
    running: tuple[E2EBox, TorFiles], tmp_path: Path
) -> None:
    box, files = running
    phone, _ = await pair_by_qr(box, "Léa's phone", "lea")
    await phone.close()
    state_file = tmp_path / "lea.json"
    phone.state.save(state_file)
    base = ("phone", "--state", str(state_file))
    code, out = await cli(*base, "reach")
    assert code == 0 and "remote reach: off" in out
    await box.reach.turn_on("test")
    code, out = await cli(*base, "reach")
    assert code == 0 and f"onion address: {ONION}" in out and "onion key: held" in out
    auth_dir = tmp_path / "tor-auth"  # the phone tor's ClientOnionAuthDir
    auth_dir.mkdir(mode=0o700)
    code, out = await cli(*base, "tor-key", str(auth_dir))
    assert code == 0, out
    line = (auth_dir / "strongroom.auth_private").read_text()
    assert line.startswith(ONION.removesuffix(".onion") + ":descriptor:x25519:")
    assert files.clients() != []


async def test_an_older_phone_is_never_sent_reach_changed() -> None:
    from strongroom.config import Limits
    from strongroom.peer.actions import Send
    from strongroom.peer.frames import Frame, encode_frame
    from strongroom.peer.handshake import HandshakeKind
    from strongroom.peer.history import Device
    from strongroom.peer.session import BoxInfo, PeerSession

    def session() -> PeerSession:
        device = Device(1, "claire", "Pixel", b"\x01" * 32, b"\x02" * 32, False)
        return PeerSession(
            box=BoxInfo("box", "f" * 39, b"\x03" * 32),
            limits=Limits(),
            kind=HandshakeKind.IK,
            remote_static=b"\x02" * 32,
            handshake_hash=b"\x00" * 64,
            device=device,
        )

    def hello(caps: list[str]) -> bytes:
        return encode_frame(Frame("hello", 1, {"name": "p", "app": "a", "caps": caps}))

    old, new = session(), session()
    old.receive(hello(["mail"]))
    new.receive(hello(["mail", "reach"]))
    assert old.reach.changed() == []
    assert new.reach.changed() == [Send(Frame("reach_changed", 0, {}))]
    # A box without remote reach answers the request: off.
    reply = new.receive(encode_frame(Frame("reach", 2, {})))
    assert reply == [Send(Frame("reach", 2, {"on": False}))]


async def test_a_phone_asking_right_after_pairing_is_not_granted_its_key_twice(
    running: tuple[E2EBox, TorFiles],
) -> None:
    box, files = running
    await box.reach.turn_on("test")
    # tor takes its time to reload: the key handed out in `paired` is not yet recorded
    # when the phone's request reaches the box.
    released, asked = threading.Event(), asyncio.Event()
    reload = files.reload
    files.reload = lambda: (released.wait(10), reload())[1]
    peers = box.box.peers
    assert peers is not None and peers.box.reach_refresh is not None
    refresh = peers.box.reach_refresh

    async def noticed(device_id: int, auth_pub: str | None) -> Mapping[str, Any]:
        asked.set()
        return await refresh(device_id, auth_pub)

    peers.box = replace(peers.box, reach_refresh=noticed)
    phone, paired = await pair_by_qr(box, "Quick phone", "quick")
    key = phone.state.onion_auth
    asking = asyncio.create_task(phone.refresh_reach())
    await asyncio.wait_for(asked.wait(), 10)
    released.set()
    update = await asyncio.wait_for(asking, 10)
    await phone.close()
    assert update.on and not update.changed and phone.state.onion_auth == key
    assert box.audit_actions("reach.grant") == ["reach.grant"]
    assert auth_file(files, paired.device_id) == service_auth_line(public_of(key or ""))
