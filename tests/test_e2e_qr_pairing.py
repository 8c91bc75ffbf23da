"""Pairing with the QR code shown by the web UI, the whole box running on loopback.

The test cannot photograph the screen, so it reads the offer the page was drawn
from by wrapping `box.pairing.issue_qr` (what the view calls); the SVG in the page
is checked to be there. The phone then pairs over Noise XXpsk3 with the URI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nacl.utils
import pytest

from e2e_helpers import (
    Clock,
    E2EBox,
    WebAdmin,
    logged_in_admin,
    new_phone,
    pair_by_qr,
    prepare_data_dir,
    running_e2e_box,
    start_box,
    until,
)
from strongroom.archive.listings import list_devices
from strongroom.client import HandshakeRefused
from strongroom.pairing.qr import QrOffer, make_offer

running = pytest.fixture(running_e2e_box)
admin = pytest.fixture(logged_in_admin)


def spy_on_offers(running: E2EBox) -> list[QrOffer]:
    offers: list[QrOffer] = []
    pairing = running.pairing
    issue: Callable[[str, int, str], QrOffer] = pairing.issue_qr

    def issue_and_remember(box_address: str, port: int, fingerprint: str) -> QrOffer:
        offer = issue(box_address, port, fingerprint)
        offers.append(offer)
        return offer

    pairing.issue_qr = issue_and_remember  # type: ignore[method-assign]  # a spy
    return offers


async def show_qr(admin: WebAdmin, offers: list[QrOffer]) -> QrOffer:
    """The admin opens "Pair with a QR code" and clicks "Show the code"."""
    status, page = await admin.get("/devices/qr")
    assert status == 200 and "<svg" not in page
    status, page, _ = await admin.post_form("/devices/qr", {})
    assert status == 200
    assert "<svg" in page and "The code works once, for 2 minutes." in page
    return offers[-1]


def device_count(running: E2EBox) -> int:
    return running.count("SELECT count(*) FROM devices")


async def test_a_phone_pairs_with_the_qr_from_the_web_ui_without_confirmation(
    running: E2EBox, admin: WebAdmin
) -> None:
    offer = await show_qr(admin, spy_on_offers(running))
    assert (offer.host, offer.port, offer.fingerprint) == (
        "127.0.0.1",
        running.runtime.port,
        running.fingerprint,
    )
    assert running.pairing.status().qr_open

    phone = new_phone("iPhone du Dr Martin", "dr.martin")
    paired = await phone.pair_qr(running.peer_url, offer.uri)  # nobody clicks anything
    assert paired.fingerprint == running.fingerprint
    [device] = list_devices(running.box.require_archive().reader())
    assert (device.id, device.owner, device.pairing_method) == (paired.device_id, "dr.martin", "qr")
    assert not running.pairing.status().qr_open  # one use

    await phone.close()
    await phone.connect()  # the paired phone comes back with Noise IK
    await phone.close()
    wanted = {"pairing.qr-issued", "pairing.qr-used", "pairing.accepted"}
    await until(lambda: wanted <= set(running.audit_actions("pairing.")), what="audit events")


async def test_a_reused_qr_secret_is_refused(running: E2EBox, admin: WebAdmin) -> None:
    offer = await show_qr(admin, spy_on_offers(running))
    first = new_phone("Premier", "dr.martin")
    await first.pair_qr(running.peer_url, offer.uri)
    second = new_phone("Photo de l'écran", "intrus")
    with pytest.raises(HandshakeRefused) as refused:
        await second.pair_qr(running.peer_url, offer.uri)
    assert refused.value.reason == "no QR pairing is open"
    assert device_count(running) == 1
    await first.close()
    await second.close()


async def test_an_expired_qr_secret_is_refused(running: E2EBox, admin: WebAdmin) -> None:
    offer = await show_qr(admin, spy_on_offers(running))
    running.clock.advance(121.0)  # the code lives 120 s
    phone = new_phone("Trop tard", "dr.martin")
    with pytest.raises(HandshakeRefused):
        await phone.pair_qr(running.peer_url, offer.uri)
    assert device_count(running) == 0
    assert not phone.state.paired
    await until(lambda: "pairing.qr-expired" in running.audit_actions("pairing."), what="audit")
    await phone.close()


async def test_a_wrong_qr_secret_is_refused_and_burns_the_real_one(
    running: E2EBox, admin: WebAdmin
) -> None:
    offers = spy_on_offers(running)
    offer = await show_qr(admin, offers)
    forged = make_offer(offer.host, offer.port, offer.fingerprint, nacl.utils.random(32))
    phone = new_phone("Faussaire", "intrus")
    with pytest.raises(HandshakeRefused) as refused:
        await phone.pair_qr(running.peer_url, forged.uri)
    assert refused.value.reason.endswith("handshake failed")
    assert device_count(running) == 0
    # One attempt per secret: the guess used it up, the real code must be shown again.
    honest = new_phone("Honnête", "dr.martin")
    with pytest.raises(HandshakeRefused):
        await honest.pair_qr(running.peer_url, offer.uri)
    fresh = await show_qr(admin, offers)
    await honest.pair_qr(running.peer_url, fresh.uri)
    assert device_count(running) == 1
    await phone.close()
    await honest.close()


async def test_pairing_events_reach_the_audit_trail_when_the_box_stops_right_after(
    tmp_path: Path,
) -> None:
    """The tick loop writes pairing events about once a second; a stop (power button,
    systemd restart) just after a pairing must not lose them."""
    config = await prepare_data_dir(tmp_path / "box")
    first = await start_box(config, clock=Clock())
    phone, _ = await pair_by_qr(first, "Pixel", "dr.martin")
    await phone.close()
    await first.stop()
    again = await start_box(config, clock=Clock())
    try:
        actions = set(again.audit_actions("pairing."))
        assert {"pairing.qr-issued", "pairing.qr-used", "pairing.accepted"} <= actions
    finally:
        await again.stop()
