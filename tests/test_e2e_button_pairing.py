"""Pairing by the PAIR button, the whole box running on loopback.

The button is a gpiozero MockFactory pin driven low then high; the phone is the
reference client over real Noise XX on a real socket; the admin confirms in the
web UI over HTTP with its session cookie and CSRF token.
"""

from __future__ import annotations

import asyncio

import pytest

from archive_helpers import SELECT_TEXTS
from e2e_helpers import (
    E2EBox,
    WebAdmin,
    logged_in_admin,
    message,
    new_phone,
    running_e2e_box,
    until,
)
from strongroom.archive.listings import list_devices
from strongroom.client import BoxError
from strongroom.control import call
from strongroom_panel.state import BoxState

running = pytest.fixture(running_e2e_box)
admin = pytest.fixture(logged_in_admin)


def _archive_counts(running: E2EBox) -> tuple[int, int, int]:
    return (
        running.count("SELECT count(*) FROM devices"),
        running.count("SELECT count(*) FROM records"),
        running.count("SELECT count(*) FROM messages"),
    )


async def test_press_blink_compare_confirm_in_the_web_ui_then_push(
    running: E2EBox, admin: WebAdmin
) -> None:
    assert running.panel_state() is BoxState.READY
    await running.press_button()
    await until(lambda: running.pairing.status().open, what="the window to open")
    assert running.panel_state() is BoxState.PAIRING_OPEN
    await running.led_blinks("pairing")
    assert running.led("status").state == 1.0

    phone = new_phone("Pixel de Maître Durand", "maitre.durand")
    phone_codes: list[str] = []
    attempt = asyncio.create_task(
        phone.pair_button(running.peer_url, running.fingerprint, on_code=phone_codes.append)
    )
    await until(lambda: running.pairing.status().pending is not None, what="a pending attempt")
    pending = running.pairing.status().pending
    assert pending is not None and pending.attempt.device_name == "Pixel de Maître Durand"
    assert phone_codes == [pending.attempt.comparison_code]
    assert not attempt.done()  # nothing is paired before the admin says so

    shown = await admin.confirm_pending_pairing()
    assert shown == pending.attempt.comparison_code
    paired = await asyncio.wait_for(attempt, 10)
    assert paired.comparison_code == shown
    assert paired.fingerprint == running.fingerprint
    await until(lambda: running.panel_state() is BoxState.PAIRED_OK, what="PAIRED_OK")
    assert running.led("pairing").state == 1.0  # steady: success

    # Later: the phone reconnects with Noise IK and its records are acked with proofs.
    await phone.close()
    await phone.connect()
    texts = [f"Dossier Lefèvre, pièce {n}" for n in range(5)]
    acks = await phone.push_many(
        message(t, conv="client-lefevre", sender="Maître Durand", n=n) for n, t in enumerate(texts)
    )
    assert len({ack.log_index for ack in acks}) == len(texts)
    assert not phone.outbox
    stored = running.query(SELECT_TEXTS + " ORDER BY m.sent_at")
    assert [row[0] for row in stored] == texts
    await phone.close()

    [device] = list_devices(running.box.require_archive().reader())
    assert (device.id, device.owner, device.pairing_method) == (
        paired.device_id,
        "maitre.durand",
        "button",
    )
    assert device.records == len(texts) and device.revoked_at is None
    status, page = await admin.get("/devices")
    assert status == 200 and "Pixel de Maître Durand" in page

    # The tick loop writes the pairing events to the audit trail about once a second.
    wanted = {"pairing.window-opened", "pairing.attempt-pending", "pairing.accepted"}
    await until(lambda: wanted <= set(running.audit_actions("pairing.")), what="audit events")
    assert "pairing.confirm" in running.audit_actions("pairing.")  # the admin's click


async def test_two_phones_in_one_window_are_both_refused_and_overlap_is_shown(
    running: E2EBox, admin: WebAdmin
) -> None:
    before = _archive_counts(running)
    await running.press_button()
    await until(lambda: running.pairing.status().open, what="the window to open")
    first = new_phone("Téléphone A", "dr.martin")
    second = new_phone("Téléphone B", "dr.martin")
    first_attempt = asyncio.create_task(first.pair_button(running.peer_url, running.fingerprint))
    await until(lambda: running.pairing.status().pending is not None, what="a pending attempt")

    with pytest.raises(BoxError) as refused_second:
        await second.pair_button(running.peer_url, running.fingerprint)
    with pytest.raises(BoxError) as refused_first:
        await asyncio.wait_for(first_attempt, 10)
    assert refused_first.value.reason == "overlap"
    assert refused_second.value.code == refused_first.value.code == "pairing-refused"

    status = running.pairing.status()
    assert status.overlap and not status.open and status.pending is None
    await until(lambda: running.panel_state() is BoxState.OVERLAP, what="OVERLAP")
    assert running.led("alert").state == 1.0  # steady alert, urgent pairing blink
    await running.led_blinks("pairing")
    code, dashboard = await admin.get("/dashboard")
    assert code == 200
    assert "Two phones tried to pair at the same time: both were refused" in dashboard
    assert _archive_counts(running) == before
    await until(lambda: "pairing.overlap" in running.audit_actions("pairing."), what="audit")
    await first.close()
    await second.close()


async def test_the_phone_that_caused_the_overlap_is_told_overlap(running: E2EBox) -> None:
    """Its person must learn to pair one phone at a time, not to "press PAIR" again."""
    await running.press_button()
    await until(lambda: running.pairing.status().open, what="the window to open")
    first = new_phone("Téléphone A", "dr.martin")
    second = new_phone("Téléphone B", "dr.martin")
    first_attempt = asyncio.create_task(first.pair_button(running.peer_url, running.fingerprint))
    await until(lambda: running.pairing.status().pending is not None, what="a pending attempt")
    with pytest.raises(BoxError) as refused_second:
        await second.pair_button(running.peer_url, running.fingerprint)
    with pytest.raises(BoxError):
        await asyncio.wait_for(first_attempt, 10)
    assert refused_second.value.reason == "overlap"
    await first.close()
    await second.close()


async def test_outside_a_window_an_unknown_phone_is_refused_and_nothing_is_stored(
    running: E2EBox,
) -> None:
    before = _archive_counts(running)
    stranger = new_phone("Inconnu", "personne")
    with pytest.raises(BoxError) as refused:
        await stranger.pair_button(running.peer_url, running.fingerprint)
    assert refused.value.reason == "no-window"
    assert not stranger.state.paired
    assert _archive_counts(running) == before
    assert running.panel_state() is BoxState.READY
    await stranger.close()


async def test_press_while_open_cancels_and_the_cli_path_opens_a_window_that_expires(
    running: E2EBox,
) -> None:
    await running.press_button()
    await until(lambda: running.pairing.status().open, what="the window to open")
    await running.press_button()
    await until(lambda: not running.pairing.status().open, what="the window to close")
    await until(lambda: running.panel_state() is BoxState.READY, what="READY")
    assert running.led("pairing").state == 0.0

    # `strongroom pair` talks to the control socket: same effect as the button.
    status, body = await call(running.data_dir, "POST", "/pair")
    assert (status, body) == (200, {"pairing_open": True})
    assert running.panel_state() is BoxState.PAIRING_OPEN
    running.clock.advance(121.0)  # nobody came: the window closes at 120 s
    await until(lambda: running.panel_state() is BoxState.READY, what="expiry")
    assert not running.pairing.status().open
    wanted = {"pairing.window-cancelled", "pairing.window-expired"}
    await until(lambda: wanted <= set(running.audit_actions("pairing.")), what="audit events")
