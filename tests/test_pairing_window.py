"""The button-pairing rules (PairingWindow) driven by an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from strongroom.pairing.codes import comparison_code
from strongroom.pairing.errors import TicketNotPending
from strongroom.pairing.events import AttemptTicket, ConfirmedBy, EventKind, PressEffect
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome, Refusal
from strongroom.pairing.window import PairingWindow
from support.clock import Clock


def phone(n: int, name: str | None = None) -> PairingAttempt:
    handshake_hash = bytes([n]) * 64
    return PairingAttempt(
        method=PairingMethod.BUTTON,
        noise_key=bytes([n]) * 32,
        sign_key=bytes([n + 100]) * 32,
        device_name=name or f"phone {n}",
        owner="maitre.dupont",
        handshake_hash=handshake_hash,
        comparison_code=comparison_code(handshake_hash),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(5000.0)


@pytest.fixture
def window(clock: Clock) -> PairingWindow:
    return PairingWindow(clock)


def ticket_of(result: AttemptTicket | Refusal) -> AttemptTicket:
    assert isinstance(result, AttemptTicket), result
    return result


def kinds(window: PairingWindow) -> list[EventKind]:
    return [event.kind for event in window.drain_events()]


def test_closed_by_default_and_unknown_phones_are_refused(window: PairingWindow) -> None:
    assert window.snapshot().open is False
    assert window.begin_attempt(phone(1)) is Refusal.NO_WINDOW
    [event] = window.drain_events()
    assert (event.kind, event.refusal, event.device_name) == (
        EventKind.REFUSED,
        Refusal.NO_WINDOW,
        "phone 1",
    )


def test_press_opens_a_120_second_window(window: PairingWindow, clock: Clock) -> None:
    assert window.press() is PressEffect.OPENED
    clock.advance(30)
    status = window.snapshot()
    assert status.open and status.seconds_left == pytest.approx(90.0)
    assert status.pending is None and status.overlap is False
    assert kinds(window) == [EventKind.WINDOW_OPENED]


def test_one_phone_pending_then_confirmed_is_accepted(window: PairingWindow, clock: Clock) -> None:
    window.press()
    ticket = ticket_of(window.begin_attempt(phone(1, "iPhone de Claire")))
    pending = window.snapshot().pending
    assert pending is not None
    assert pending.attempt.device_name == "iPhone de Claire"
    assert pending.attempt.comparison_code == comparison_code(bytes([1]) * 64)
    clock.advance(10)
    window.confirm(ticket.ticket_id)
    assert window.take_verdicts() == [(ticket.ticket_id, PairingOutcome.accept())]
    status = window.snapshot()
    assert not status.open and status.pending is None
    assert status.last_result is not None
    assert status.last_result.accepted and status.last_result.at == clock.now
    accepted = [e for e in window.drain_events() if e.kind is EventKind.ACCEPTED]
    assert [(e.confirmed_by, e.noise_key) for e in accepted] == [(ConfirmedBy.ADMIN, b"\1" * 32)]
    # One device per window: the window is closed now.
    assert window.begin_attempt(phone(2)) is Refusal.NO_WINDOW


def test_two_phones_in_one_window_are_both_refused(window: PairingWindow) -> None:
    window.press()
    first = ticket_of(window.begin_attempt(phone(1)))
    assert window.begin_attempt(phone(2)) is Refusal.OVERLAP
    assert window.take_verdicts() == [(first.ticket_id, PairingOutcome.refuse(Refusal.OVERLAP))]
    status = window.snapshot()
    assert status.overlap and not status.open and status.pending is None
    assert status.last_result is not None and status.last_result.refusal is Refusal.OVERLAP
    with pytest.raises(TicketNotPending):
        window.confirm(first.ticket_id)
    events = window.drain_events()
    refused = {e.noise_key for e in events if e.refusal is Refusal.OVERLAP}
    assert refused == {b"\1" * 32, b"\2" * 32}
    assert EventKind.OVERLAP in [e.kind for e in events]


def test_contact_60s_before_the_press_and_another_in_the_window_overlap(
    window: PairingWindow, clock: Clock
) -> None:
    window.note_unknown_contact(phone(9).noise_key)
    clock.advance(60)
    window.press()
    assert window.begin_attempt(phone(1)) is Refusal.OVERLAP
    assert window.snapshot().overlap


def test_contact_older_than_the_lookback_does_not_count(
    window: PairingWindow, clock: Clock
) -> None:
    window.note_unknown_contact(phone(9).noise_key)
    clock.advance(120.5)
    window.press()
    assert isinstance(window.begin_attempt(phone(1)), AttemptTicket)


def test_the_same_phone_trying_before_and_after_the_press_is_one_device(
    window: PairingWindow, clock: Clock
) -> None:
    # The usual story: the owner taps "pair" on the phone first, then presses PAIR.
    window.note_unknown_contact(phone(1).noise_key)
    assert window.begin_attempt(phone(1)) is Refusal.NO_WINDOW
    clock.advance(20)
    window.press()
    window.note_unknown_contact(phone(1).noise_key)
    assert isinstance(window.begin_attempt(phone(1)), AttemptTicket)


def test_a_second_handshake_during_a_pending_attempt_is_an_overlap(window: PairingWindow) -> None:
    window.press()
    first = ticket_of(window.begin_attempt(phone(1)))
    window.note_unknown_contact(phone(2).noise_key)
    assert window.take_verdicts() == [(first.ticket_id, PairingOutcome.refuse(Refusal.OVERLAP))]
    assert window.snapshot().overlap


def test_window_expires_at_120s_and_refuses_the_pending_attempt(
    window: PairingWindow, clock: Clock
) -> None:
    window.press()
    opened_at = clock.now
    ticket = ticket_of(window.begin_attempt(phone(1)))
    clock.advance(119.9)
    assert window.snapshot().open
    assert window.take_verdicts() == []
    clock.advance(5)  # noticed late: the audit still says when it really closed
    window.tick()
    assert window.take_verdicts() == [(ticket.ticket_id, PairingOutcome.refuse(Refusal.EXPIRED))]
    status = window.snapshot()
    assert not status.open and status.seconds_left == 0.0 and status.pending is None
    events = window.drain_events()
    expired = [e for e in events if e.kind is EventKind.WINDOW_EXPIRED]
    assert [e.at for e in expired] == [opened_at + 120.0]
    with pytest.raises(TicketNotPending):
        window.confirm(ticket.ticket_id)


def test_expiry_applies_without_any_tick(window: PairingWindow, clock: Clock) -> None:
    window.press()
    clock.advance(120.0)
    assert window.begin_attempt(phone(1)) is Refusal.NO_WINDOW


def test_pressing_again_cancels_the_window(window: PairingWindow) -> None:
    window.press()
    assert window.press() is PressEffect.CANCELLED
    assert not window.snapshot().open
    assert kinds(window) == [EventKind.WINDOW_OPENED, EventKind.WINDOW_CANCELLED]
    assert window.press() is PressEffect.OPENED


def test_a_press_while_pending_confirms_that_attempt(window: PairingWindow) -> None:
    window.press()
    ticket = ticket_of(window.begin_attempt(phone(1)))
    assert window.press() is PressEffect.CONFIRMED
    assert window.take_verdicts() == [(ticket.ticket_id, PairingOutcome.accept())]
    accepted = [e for e in window.drain_events() if e.kind is EventKind.ACCEPTED]
    assert [e.confirmed_by for e in accepted] == [ConfirmedBy.BUTTON]
    assert not window.snapshot().open


def test_reject_refuses_and_closes(window: PairingWindow) -> None:
    window.press()
    ticket = ticket_of(window.begin_attempt(phone(1)))
    window.reject(ticket.ticket_id)
    assert window.take_verdicts() == [(ticket.ticket_id, PairingOutcome.refuse(Refusal.REJECTED))]
    status = window.snapshot()
    assert not status.open
    assert status.last_result is not None and status.last_result.refusal is Refusal.REJECTED
    with pytest.raises(TicketNotPending):
        window.reject(ticket.ticket_id)


def test_cancel_refuses_the_pending_attempt(window: PairingWindow) -> None:
    window.press()
    ticket = ticket_of(window.begin_attempt(phone(1)))
    assert window.cancel() is True
    assert window.take_verdicts() == [(ticket.ticket_id, PairingOutcome.refuse(Refusal.CANCELLED))]
    assert window.cancel() is False


def test_confirm_of_an_unknown_ticket_is_refused(window: PairingWindow) -> None:
    window.press()
    ticket_of(window.begin_attempt(phone(1)))
    with pytest.raises(TicketNotPending):
        window.confirm("not-a-ticket")
    assert window.snapshot().pending is not None


def test_the_same_phone_reconnecting_replaces_its_attempt(window: PairingWindow) -> None:
    window.press()
    old = ticket_of(window.begin_attempt(phone(1)))
    new = ticket_of(window.begin_attempt(phone(1)))
    assert new.ticket_id != old.ticket_id
    assert window.take_verdicts() == [(old.ticket_id, PairingOutcome.refuse(Refusal.CANCELLED))]
    pending = window.snapshot().pending
    assert pending is not None and pending.ticket_id == new.ticket_id


def test_a_withdrawn_attempt_still_makes_the_window_taken(window: PairingWindow) -> None:
    window.press()
    ticket = ticket_of(window.begin_attempt(phone(1)))
    window.withdraw(ticket.ticket_id)
    status = window.snapshot()
    assert status.open and status.pending is None
    assert window.take_verdicts() == []
    assert isinstance(window.begin_attempt(phone(1)), AttemptTicket)  # it may come back
    assert window.begin_attempt(phone(2)) is Refusal.OVERLAP  # another phone may not


def test_an_accepted_phone_does_not_spoil_the_next_window(
    window: PairingWindow, clock: Clock
) -> None:
    window.press()
    window.note_unknown_contact(phone(1).noise_key)
    window.confirm(ticket_of(window.begin_attempt(phone(1))).ticket_id)
    clock.advance(30)
    window.press()
    assert isinstance(window.begin_attempt(phone(2)), AttemptTicket)


def test_overlap_flag_clears_on_the_next_press_or_after_a_while(
    window: PairingWindow, clock: Clock
) -> None:
    window.press()
    window.begin_attempt(phone(1))
    window.begin_attempt(phone(2))
    assert window.snapshot().overlap
    clock.advance(59)
    assert window.snapshot().overlap
    clock.advance(1)
    assert not window.snapshot().overlap
    window.note_unknown_contact(phone(3).noise_key)
    window.note_unknown_contact(phone(4).noise_key)  # window closed: no overlap to show
    assert not window.snapshot().overlap
    window.cancel()
    window.press()
    window.begin_attempt(phone(5))
    assert window.snapshot().overlap
    window.press()
    status = window.snapshot()
    assert status.open and not status.overlap


def test_a_flood_of_unknown_keys_still_counts_as_overlap(
    window: PairingWindow, clock: Clock
) -> None:
    for n in range(2000):
        window.note_unknown_contact(n.to_bytes(32, "big"))
    window.press()
    assert window.begin_attempt(phone(1)) is Refusal.OVERLAP


def test_every_transition_is_drained_once_for_the_audit(
    window: PairingWindow, clock: Clock
) -> None:
    window.press()
    window.note_unknown_contact(phone(1).noise_key)
    first = ticket_of(window.begin_attempt(phone(1)))
    window.confirm(first.ticket_id)
    clock.advance(1)
    window.press()
    window.begin_attempt(phone(2))
    window.begin_attempt(phone(3))
    events = window.drain_events()
    assert [e.kind for e in events] == [
        EventKind.WINDOW_OPENED,
        EventKind.UNKNOWN_CONTACT,
        EventKind.ATTEMPT_PENDING,
        EventKind.ACCEPTED,
        EventKind.WINDOW_OPENED,
        EventKind.ATTEMPT_PENDING,
        EventKind.REFUSED,
        EventKind.REFUSED,
        EventKind.OVERLAP,
    ]
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert events[3].ticket_id == first.ticket_id
    assert [e.refusal for e in events[-3:]] == [Refusal.OVERLAP, Refusal.OVERLAP, None]
    assert [e.device_name for e in events[-3:-1]] == ["phone 2", "phone 3"]
    assert window.drain_events() == []
