"""After a power cut: an attended box waits locked for the admin, an unattended one opens
by itself. Phones keep their records and retry meanwhile; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from archive_helpers import COUNT_BY_TEXT
from e2e_helpers import (
    Clock,
    E2EBox,
    WebAdmin,
    message,
    pair_by_qr,
    prepare_data_dir,
    start_box,
    until,
)
from strongroom.client import ConnectionLost, LinkError, PhoneClient
from strongroom.config import BoxConfig
from strongroom.unlock import BoxPhase
from strongroom_panel.state import BoxState
from web_helpers import ADMIN_PASSWORD


async def paired_then_rebooted(tmp_path: Path) -> tuple[BoxConfig, PhoneClient, E2EBox]:
    """A phone paired and heard once; then the box restarts (attended: it comes up locked)."""
    config = await prepare_data_dir(tmp_path / "box")
    first = await start_box(config, clock=Clock())
    phone, _ = await pair_by_qr(first, "Pixel", "maitre.durand")
    await phone.push(message("avant la coupure", conv="c", sender="Me", n=0))
    await phone.close()
    await first.stop()
    rebooted = await start_box(config, clock=Clock(), unlock=False)
    return config, phone, rebooted


async def test_a_locked_box_serves_only_the_unlock_page_and_tells_phones_locked(
    tmp_path: Path,
) -> None:
    _, phone, box = await paired_then_rebooted(tmp_path)
    try:
        assert box.phase() is BoxPhase.LOCKED
        assert box.panel_state() is BoxState.LOCKED
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/devices", "/archive"):
                async with http.get(box.url + path, allow_redirects=False) as response:
                    assert response.status == 303
                    assert response.headers["Location"] == "/unlock"
            async with http.get(box.peer_url.replace("ws://", "http://")) as response:
                assert response.status == 503
                assert await response.json() == {"error": "locked"}
                assert "Retry-After" in response.headers
    finally:
        await phone.close()
        await box.stop()


async def _connect_until_it_works(phone: PhoneClient, url: str, failures: list[str]) -> None:
    """What a phone app does while the box is locked: keep the outbox, try again."""
    while True:
        try:
            await phone.connect(url)
            return
        except (aiohttp.ClientError, LinkError) as exc:
            failures.append(type(exc).__name__)
            await asyncio.sleep(0.05)


async def test_the_phone_retries_and_its_outbox_is_stored_once_after_the_web_unlock(
    tmp_path: Path,
) -> None:
    _, phone, box = await paired_then_rebooted(tmp_path)
    admin = WebAdmin(box.url)
    try:
        texts = [f"pendant la coupure {n}" for n in range(4)]
        for n, text in enumerate(texts):
            try:
                await phone.push(message(text, conv="c", sender="Me", n=n + 1))
            except ConnectionLost:
                pass  # offline: the record waits in the outbox
        assert len(phone.outbox) == len(texts)

        failures: list[str] = []
        retrying = asyncio.create_task(_connect_until_it_works(phone, box.peer_url, failures))
        await until(lambda: len(failures) >= 3, what="the phone to be refused while locked")
        assert not retrying.done() and len(phone.outbox) == len(texts)

        status, page, _ = await admin.post_form("/unlock", {"passphrase": "not the passphrase"})
        assert status == 403 and "Wrong passphrase." in page
        assert box.phase() is BoxPhase.LOCKED
        status, _, location = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert (status, location) == (303, "/login")
        assert box.phase() is BoxPhase.READY

        await asyncio.wait_for(retrying, 10)
        assert not phone.outbox  # every record acked, with a verified proof
        for text in texts:
            assert box.count(COUNT_BY_TEXT + " = ?", text) == 1
        assert box.count("SELECT count(*) FROM records") == len(texts) + 1
        await until(lambda: box.panel_state() is BoxState.READY, what="READY")
        assert "box.unlock" in box.audit_actions("box.")
    finally:
        await admin.close()
        await phone.close()
        await box.stop()


async def test_an_unattended_box_unlocks_itself_at_start(tmp_path: Path) -> None:
    (tmp_path / "usb").mkdir()
    config = await prepare_data_dir(tmp_path / "box", keyfile=tmp_path / "usb" / "unlock.key")
    first = await start_box(config, clock=Clock(), unlock=False)
    assert first.phase() is BoxPhase.READY
    phone, _ = await pair_by_qr(first, "Pixel", "dr.martin")
    await phone.close()
    await first.stop()

    rebooted = await start_box(config, clock=Clock(), unlock=False)  # nobody types anything
    try:
        assert rebooted.phase() is BoxPhase.READY
        assert rebooted.panel_state() is BoxState.READY
        await phone.connect(rebooted.peer_url)
        ack = await phone.push(message("après le redémarrage", conv="c", sender="Me", n=1))
        assert ack.log_index > 0
    finally:
        await phone.close()
        await rebooted.stop()
