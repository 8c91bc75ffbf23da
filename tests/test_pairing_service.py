"""PairingService: the PairingGate the peer service awaits, on an injected clock."""

from __future__ import annotations

import asyncio

import pytest

from strongroom.pairing.codes import comparison_code
from strongroom.pairing.errors import TicketNotPending
from strongroom.pairing.events import ConfirmedBy, EventKind, PressEffect
from strongroom.pairing.gate import (
    PairingAttempt,
    PairingMethod,
    PairingOutcome,
    Refusal,
)
from strongroom.pairing.service import PairingService
from support.clock import Clock
from support.wait import until

FP = "16ec-fa3d-fc93-0617-3c9b-4e04-63d0-43e4"


def phone(n: int, method: PairingMethod = PairingMethod.BUTTON) -> PairingAttempt:
    handshake_hash = bytes([n]) * 64
    return PairingAttempt(
        method=method,
        noise_key=bytes([n]) * 32,
        sign_key=bytes([n + 100]) * 32,
        device_name=f"phone {n}",
        owner="dr.martin",
        handshake_hash=handshake_hash,
        comparison_code=comparison_code(handshake_hash),
    )


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def clock() -> Clock:
    return Clock(10_000.0)


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def service(clock: Clock, changes: Changes) -> PairingService:
    return PairingService(clock, on_change=changes)


async def pending_request(
    service: PairingService, attempt: PairingAttempt
) -> tuple[asyncio.Task[PairingOutcome], str]:
    """Start a request and wait until the admin sees it; returns (task, ticket id)."""
    task = asyncio.create_task(service.request(attempt))
    await until(lambda: service.status().pending is not None)
    pending = service.status().pending
    assert pending is not None and pending.attempt == attempt
    return task, pending.ticket_id


async def test_no_window_means_refused_at_once(service: PairingService) -> None:
    assert await service.request(phone(1)) == PairingOutcome.refuse(Refusal.NO_WINDOW)


async def test_one_phone_is_accepted_after_the_admin_confirms(
    service: PairingService, changes: Changes
) -> None:
    assert service.press() is PressEffect.OPENED
    before = changes.count
    task, ticket_id = await pending_request(service, phone(1))
    assert changes.count > before  # the UI shows the pending code
    assert not task.done()
    service.confirm(ticket_id)
    assert await task == PairingOutcome.accept()
    status = service.status()
    assert not status.open and status.last_result is not None and status.last_result.accepted


async def test_two_phones_in_one_window_are_both_refused(service: PairingService) -> None:
    service.press()
    first, _ = await pending_request(service, phone(1))
    second = await service.request(phone(2))
    assert second == PairingOutcome.refuse(Refusal.OVERLAP)
    assert await first == PairingOutcome.refuse(Refusal.OVERLAP)
    assert service.status().overlap


async def test_contact_before_the_press_then_another_phone_is_an_overlap(
    service: PairingService, clock: Clock
) -> None:
    service.note_unknown_contact(phone(7).noise_key)
    clock.now += 60
    service.press()
    assert await service.request(phone(1)) == PairingOutcome.refuse(Refusal.OVERLAP)


async def test_pending_attempt_expires_with_the_window(
    service: PairingService, clock: Clock
) -> None:
    service.press()
    task, _ = await pending_request(service, phone(1))
    clock.now += 119.0
    service.tick()
    await asyncio.sleep(0)
    assert not task.done()
    clock.now += 1.0
    service.tick()
    assert await task == PairingOutcome.refuse(Refusal.EXPIRED)


async def test_run_ticks_by_itself(service: PairingService, clock: Clock) -> None:
    service.press()
    task, _ = await pending_request(service, phone(1))
    ticker = asyncio.create_task(service.run(interval_s=0.001))
    clock.now += 120.0
    try:
        assert await asyncio.wait_for(task, 5.0) == PairingOutcome.refuse(Refusal.EXPIRED)
    finally:
        ticker.cancel()


async def test_pressing_again_cancels_and_pressing_while_pending_confirms(
    service: PairingService,
) -> None:
    service.press()
    assert service.press() is PressEffect.CANCELLED
    assert not service.status().open
    service.press()
    task, _ = await pending_request(service, phone(1))
    assert service.press() is PressEffect.CONFIRMED
    assert await task == PairingOutcome.accept()
    accepted = [e for e in service.drain_events() if e.kind is EventKind.ACCEPTED]
    assert [e.confirmed_by for e in accepted] == [ConfirmedBy.BUTTON]


async def test_reject_and_cancel_answer_the_waiting_phone(service: PairingService) -> None:
    service.press()
    task, ticket_id = await pending_request(service, phone(1))
    service.reject(ticket_id)
    assert await task == PairingOutcome.refuse(Refusal.REJECTED)
    with pytest.raises(TicketNotPending):
        service.confirm(ticket_id)
    service.press()
    task, _ = await pending_request(service, phone(2))
    assert service.cancel() is True
    assert await task == PairingOutcome.refuse(Refusal.CANCELLED)


async def test_a_phone_that_hangs_up_is_withdrawn(service: PairingService) -> None:
    service.press()
    task, _ = await pending_request(service, phone(1))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = service.status()
    assert status.open and status.pending is None
    kinds = [e.kind for e in service.drain_events()]
    assert kinds[-1] is EventKind.ATTEMPT_WITHDRAWN


async def test_qr_pairing_is_accepted_once_per_secret(
    service: PairingService, changes: Changes
) -> None:
    assert service.qr_secret() is None
    offer = service.issue_qr("strongroom.local", 443, FP)
    assert service.status().qr_open
    assert service.qr_secret() == offer.secret
    # The peer ran XXpsk3 with the secret, then consumes it and asks.
    service.consume_qr_secret()
    assert service.qr_secret() is None
    first = await service.request(phone(1, PairingMethod.QR))
    second = await service.request(phone(2, PairingMethod.QR))  # scanned the same code
    assert first == PairingOutcome.accept()
    assert second == PairingOutcome.refuse(Refusal.BAD_SECRET)
    status = service.status()
    assert not status.qr_open
    assert status.last_result is not None and status.last_result.method is PairingMethod.QR
    events = service.drain_events()
    assert [e.kind for e in events] == [
        EventKind.QR_ISSUED,
        EventKind.QR_USED,
        EventKind.ACCEPTED,
        EventKind.REFUSED,
    ]
    assert events[2].confirmed_by is ConfirmedBy.QR_CODE


async def test_qr_attempt_without_a_used_secret_is_refused(service: PairingService) -> None:
    assert await service.request(phone(1, PairingMethod.QR)) == PairingOutcome.refuse(
        Refusal.BAD_SECRET
    )


async def test_expired_qr_secret_is_gone_and_audited(service: PairingService, clock: Clock) -> None:
    service.issue_qr("strongroom.local", 443, FP)
    clock.now += 120.0
    assert service.qr_secret() is None
    service.consume_qr_secret()  # a late handshake: nothing to consume
    assert await service.request(phone(1, PairingMethod.QR)) == PairingOutcome.refuse(
        Refusal.BAD_SECRET
    )
    expired = [e for e in service.drain_events() if e.kind is EventKind.QR_EXPIRED]
    assert [e.at for e in expired] == [10_120.0]


async def test_qr_credit_does_not_outlive_its_grace(service: PairingService, clock: Clock) -> None:
    service.issue_qr("strongroom.local", 443, FP)
    service.consume_qr_secret()
    clock.now += 31.0
    assert await service.request(phone(1, PairingMethod.QR)) == PairingOutcome.refuse(
        Refusal.BAD_SECRET
    )


def test_a_new_qr_code_withdraws_the_previous_one(service: PairingService) -> None:
    first = service.issue_qr("strongroom.local", 443, FP)
    second = service.issue_qr("strongroom.local", 443, FP)
    assert service.qr_secret() == second.secret != first.secret
    assert service.withdraw_qr() is True
    assert service.qr_secret() is None
    kinds = [e.kind for e in service.drain_events()]
    assert kinds == [
        EventKind.QR_ISSUED,
        EventKind.QR_WITHDRAWN,
        EventKind.QR_ISSUED,
        EventKind.QR_WITHDRAWN,
    ]


async def test_a_failing_on_change_does_not_decide_anything(clock: Clock) -> None:
    def broken() -> None:
        raise RuntimeError("LED driver gone")

    service = PairingService(clock, on_change=broken)
    service.press()
    task, ticket_id = await pending_request(service, phone(1))
    service.confirm(ticket_id)
    assert await task == PairingOutcome.accept()


def test_on_change_fires_on_expiry_only_when_something_changed(
    service: PairingService, clock: Clock, changes: Changes
) -> None:
    service.press()
    after_press = changes.count
    service.tick()
    service.status()
    assert changes.count == after_press  # nothing changed: no LED refresh storm
    clock.now += 120.0
    service.tick()
    assert changes.count == after_press + 1
