"""Revoking a lost phone and re-pairing its owner, the whole box running on loopback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from archive_helpers import COUNT_BY_TEXT
from e2e_helpers import (
    Clock,
    E2EBox,
    WebAdmin,
    attachment,
    message,
    pair_by_qr,
    prepare_data_dir,
    start_box,
    until,
)
from strongroom.archive.listings import list_devices
from strongroom.client import BoxError, ConnectionLost, HandshakeRefused, PhoneClient
from strongroom.config import BoxConfig
from strongroom.control import call


@pytest.fixture
async def config(tmp_path: Path) -> BoxConfig:
    return await prepare_data_dir(tmp_path / "box")


@pytest.fixture
async def running(config: BoxConfig) -> AsyncIterator[E2EBox]:
    box = await start_box(config, clock=Clock())
    yield box
    await box.stop()


async def claire_writes_her_file(phone: PhoneClient) -> tuple[list[str], bytes]:
    """Three messages and a scanned PDF attached to the last one; returns texts and PDF."""
    texts = [f"Compte rendu n°{n}, Mme Lefèvre" for n in range(3)]
    records = [
        message(t, conv="patient-lefevre", sender="Dr Claire", n=n) for n, t in enumerate(texts)
    ]
    await phone.push_many(records)
    pdf = b"%PDF-1.7 " + os.urandom(150_000)
    await phone.upload_attachment(pdf)
    await phone.push(attachment(records[-1], pdf, "ordonnance.pdf"))
    return texts, pdf


def revoked(running: E2EBox, device_id: int) -> bool:
    rows = list_devices(running.box.require_archive().reader())
    return next(row for row in rows if row.id == device_id).revoked_at is not None


async def revoke_and_repair(
    running: E2EBox, revoke: Callable[[int], Awaitable[None]], tmp_path: Path
) -> PhoneClient:
    """Shared story; `revoke(device_id)` is the admin's action (web UI or CLI).
    Returns the lost phone (closed)."""
    lost, lost_pairing = await pair_by_qr(running, "Téléphone perdu", "claire")
    texts, pdf = await claire_writes_her_file(lost)
    paul, _ = await pair_by_qr(running, "Téléphone de Paul", "paul")
    assert lost.connected

    await revoke(lost_pairing.device_id)
    await until(lambda: not lost.connected, timeout_s=1.0, what="the session to close")
    assert revoked(running, lost_pairing.device_id)
    with pytest.raises(HandshakeRefused) as refused:
        await lost.connect()
    assert "revoked" in refused.value.reason

    # Mail for Claire while she has no phone: the box keeps it for her next one.
    await paul.send_mail("claire", b"RDV deplace a jeudi")
    assert running.count("SELECT count(*) FROM mail WHERE acked_at IS NULL") == 1

    new, _ = await pair_by_qr(running, "Nouveau téléphone", "claire")
    seen: list[int] = []
    history = await new.restore_history(seen.append, attachments_dir=tmp_path / "restored")
    restored = [item.fields for item in history]
    assert [f["text"] for f in restored if f["kind"] == "message"] == texts
    [pdf_record] = [f for f in restored if f["kind"] == "attachment"]
    assert pdf_record["blob"]["name"] == "ordonnance.pdf"
    assert (tmp_path / "restored" / pdf_record["blob"]["sha256"].hex()).read_bytes() == pdf
    assert seen and seen[-1] == len(history)
    [mail] = await new.receive_mail(count=1, wait_s=5)
    assert (mail.sender_owner, mail.payload) == ("paul", b"RDV deplace a jeudi")
    for phone in (lost, paul, new):
        await phone.close()
    return lost


async def test_revoke_in_the_web_ui_closes_the_session_and_the_owner_gets_everything_back(
    running: E2EBox, tmp_path: Path
) -> None:
    admin = WebAdmin(running.url)
    await admin.login()

    async def revoke_in_the_web_ui(device_id: int) -> None:
        status, _, location = await admin.post_form(
            f"/devices/{device_id}/revoke", {}, form_page=f"/devices/{device_id}/revoke"
        )
        assert (status, location) == (303, "/devices")

    try:
        await revoke_and_repair(running, revoke_in_the_web_ui, tmp_path)
        await until(lambda: "device.revoke" in running.audit_actions("device."), what="audit")
    finally:
        await admin.close()


async def test_revoke_from_the_cli_holds_after_a_restart(
    config: BoxConfig, running: E2EBox, tmp_path: Path
) -> None:
    async def revoke_from_the_cli(device_id: int) -> None:
        status, body = await call(running.data_dir, "POST", f"/revoke/{device_id}")
        assert (status, body) == (200, {"revoked": True})

    lost = await revoke_and_repair(running, revoke_from_the_cli, tmp_path)
    await running.stop()

    again = await start_box(config, clock=Clock())  # the box rebooted
    try:
        assert lost.state.device_id is not None and revoked(again, lost.state.device_id)
        with pytest.raises(HandshakeRefused) as refused:
            await lost.connect(again.peer_url)
        assert "revoked" in refused.value.reason
    finally:
        await lost.close()
        await again.stop()


async def test_a_revoked_phone_mid_session_gets_no_more_acks(running: E2EBox) -> None:
    phone, pairing = await pair_by_qr(running, "Volé", "claire")
    await phone.push(message("avant", conv="c", sender="Claire", n=1))
    await call(running.data_dir, "POST", f"/revoke/{pairing.device_id}")
    with pytest.raises((BoxError, ConnectionLost)):  # refused frame, or the link closed
        await asyncio.wait_for(
            phone.push(message("après", conv="c", sender="Claire", n=2)), timeout=5
        )
    assert running.count(COUNT_BY_TEXT + " = 'après'") == 0
    await phone.close()
