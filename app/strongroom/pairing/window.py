"""The button-pairing rules as a pure state machine: no asyncio, no I/O, time from `clock`.

Rules (issue 5, "push-button, like WPS PBC but safe"):

- `press()` opens a window of `duration_s` (120 s). During the window the box
  accepts at most ONE new device, and only once the admin confirmed it after
  comparing the code (web UI click -> `confirm`, or a second press, see below).
- Overlap: if a second, distinct unknown device shows up while the window is open
  (attempt or mere completed handshake), or had shown up in the `overlap_lookback_s`
  (120 s) before the press, every attempt of the window is refused OVERLAP, the
  window closes and `overlap` is raised for the LEDs and the UI. A device is known
  by its Noise static key; the same phone reconnecting is not a second device.
- Pressing again while the window is open and nothing is pending cancels it.
- Unconfirmed attempts expire with the window (refused EXPIRED at 120 s).
- Every transition is recorded as a `PairingEvent` (`drain_events`) for the audit
  trail, and every decided attempt as a verdict (`take_verdicts`) for whoever waits.

A press while an attempt is PENDING confirms that attempt. Why: a box on a shelf
with no screen must be pairable by the person standing at it, and "press once to
open, press again when your phone says 'waiting for confirmation'" is the simplest
gesture. The trade-off: (1) a press can then no longer cancel a window that has a
pending attempt (reject it in the web UI, or let it expire); (2) whoever confirms by
button has not compared the comparison code, which the box cannot show. The button
confirmation therefore protects against remote devices that race the real phone
(any second device is an overlap, and a lone attacker must guess the exact 120 s
window the owner opens), but not against an active man-in-the-middle on the LAN
who relays the real phone's attempt as the only one the box sees. Only the web-UI
confirmation after comparing the code (or QR pairing) covers that case.

Every public method first applies what the clock says is due (expiry, end of the
overlap display), so correctness never depends on how often `tick()` is called.
"""

from __future__ import annotations

from collections.abc import Callable

from strongroom.pairing.errors import TicketNotPending
from strongroom.pairing.events import (
    AttemptTicket,
    ConfirmedBy,
    EventKind,
    LastResult,
    PairingEvent,
    PairingStatus,
    PressEffect,
    attempt_event,
    new_ticket_id,
)
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome, Refusal

DEFAULT_WINDOW_S = 120.0
DEFAULT_LOOKBACK_S = 120.0
# How long the overlap flag stays raised unless a press or cancel clears it first.
DEFAULT_OVERLAP_SHOWN_S = 60.0
# Remembering the two most recent distinct keys is enough to detect an overlap; the
# margin only makes eviction irrelevant in practice. Bounded so that a flood of
# handshakes from fresh keys cannot grow memory.
MAX_REMEMBERED_CONTACTS = 256


class PairingWindow:
    """The button-pairing state machine (see the module doc for the rules)."""

    def __init__(
        self,
        clock: Callable[[], float],
        duration_s: float = DEFAULT_WINDOW_S,
        overlap_lookback_s: float = DEFAULT_LOOKBACK_S,
        overlap_shown_s: float = DEFAULT_OVERLAP_SHOWN_S,
    ) -> None:
        if duration_s <= 0 or overlap_lookback_s < 0 or overlap_shown_s < 0:
            raise ValueError("durations must be positive")
        self._clock = clock
        self._duration_s = duration_s
        self._lookback_s = overlap_lookback_s
        self._overlap_shown_s = overlap_shown_s
        self._opened_at: float | None = None
        self._window_key: bytes | None = None  # the one device this window is for
        self._pending: AttemptTicket | None = None
        self._contacts: dict[bytes, float] = {}  # unknown noise key -> last seen
        self._overlap_at: float | None = None
        self._last_result: LastResult | None = None
        self._events: list[PairingEvent] = []
        self._verdicts: list[tuple[str, PairingOutcome]] = []
        self._version = 0

    # -- queries ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Grows with every transition; a caller compares it to know if anything changed."""
        return self._version

    def snapshot(self) -> PairingStatus:
        now = self._advance()
        left = 0.0 if self._opened_at is None else self._opened_at + self._duration_s - now
        return PairingStatus(
            now=now,
            open=self._opened_at is not None,
            seconds_left=max(0.0, left),
            pending=self._pending,
            last_result=self._last_result,
            overlap=self._overlap_at is not None,
        )

    def drain_events(self) -> list[PairingEvent]:
        """Every event since the last call, oldest first (the box writes them to the audit)."""
        self._advance()
        events, self._events = self._events, []
        return events

    def take_verdicts(self) -> list[tuple[str, PairingOutcome]]:
        """(ticket_id, outcome) of every ticket decided since the last call."""
        self._advance()
        verdicts, self._verdicts = self._verdicts, []
        return verdicts

    # -- events ----------------------------------------------------------------------

    def tick(self) -> None:
        """Apply what the clock says is due; the box calls it about once a second."""
        self._advance()

    def press(self) -> PressEffect:
        """A PAIR press (button, web UI or CLI): open, confirm the pending attempt, or cancel."""
        now = self._advance()
        if self._opened_at is None:
            self._opened_at = now
            self._window_key = None
            self._overlap_at = None
            self._record(EventKind.WINDOW_OPENED, now)
            return PressEffect.OPENED
        if self._pending is not None:
            self._decide(self._pending, PairingOutcome.accept(), now, ConfirmedBy.BUTTON)
            return PressEffect.CONFIRMED
        self._cancel(now)
        return PressEffect.CANCELLED

    def cancel(self) -> bool:
        """Close the window (pending attempt refused CANCELLED) and clear the overlap flag.
        Returns whether anything changed."""
        now = self._advance()
        changed = self._overlap_at is not None
        self._overlap_at = None
        if self._opened_at is not None:
            self._cancel(now)
            return True
        if changed:
            self._version += 1
        return changed

    def note_unknown_contact(self, noise_key: bytes) -> None:
        """An unknown phone completed a handshake; during a window, a second one is an overlap."""
        now = self._advance()
        if self._remember(noise_key, now):
            self._record(EventKind.UNKNOWN_CONTACT, now, noise_key=noise_key)
        if self._opened_at is not None and self._other_device_seen(noise_key):
            self._overlap(now, None, noise_key)

    def begin_attempt(self, attempt: PairingAttempt) -> AttemptTicket | Refusal:
        """A phone asks to pair by the button path: a ticket to confirm, or a refusal now.

        The service routes QR attempts elsewhere; here every attempt is a button one.
        """
        now = self._advance()
        key = attempt.noise_key
        if self._opened_at is None:
            # Right after an overlap closed the window, the late phone must hear
            # "overlap" too, so its owner pairs one phone at a time.
            refusal = Refusal.OVERLAP if self._overlap_at is not None else Refusal.NO_WINDOW
            self._record_attempt(EventKind.REFUSED, now, attempt, refusal=refusal)
            return refusal
        self._remember(key, now)
        if self._other_device_seen(key):
            self._overlap(now, attempt, key)
            return Refusal.OVERLAP
        if self._pending is not None:
            # The same phone again (its previous connection died unnoticed): the new
            # handshake replaces the old one, whose waiter is told CANCELLED.
            old, self._pending = self._pending, None
            self._verdicts.append((old.ticket_id, PairingOutcome.refuse(Refusal.CANCELLED)))
            self._record_attempt(
                EventKind.REFUSED, now, old.attempt, Refusal.CANCELLED, ticket_id=old.ticket_id
            )
        self._window_key = key
        ticket = AttemptTicket(new_ticket_id(), attempt, now)
        self._pending = ticket
        self._record_attempt(EventKind.ATTEMPT_PENDING, now, attempt, ticket_id=ticket.ticket_id)
        return ticket

    def confirm(self, ticket_id: str) -> None:
        """The admin compared the code and accepts; raises TicketNotPending if it is over."""
        now = self._advance()
        self._decide(
            self._pending_ticket(ticket_id), PairingOutcome.accept(), now, ConfirmedBy.ADMIN
        )

    def reject(self, ticket_id: str) -> None:
        """The admin refuses (e.g. the codes differ); the window closes."""
        now = self._advance()
        outcome = PairingOutcome.refuse(Refusal.REJECTED)
        self._decide(self._pending_ticket(ticket_id), outcome, now, None)

    def withdraw(self, ticket_id: str) -> None:
        """The phone went away before a decision: forget its ticket, keep the window open.

        Its key stays the window's device, so another phone is still an overlap.
        Withdrawing a ticket that is already decided does nothing.
        """
        now = self._advance()
        ticket = self._pending
        if ticket is None or ticket.ticket_id != ticket_id:
            return
        self._pending = None
        self._record_attempt(EventKind.ATTEMPT_WITHDRAWN, now, ticket.attempt, ticket_id=ticket_id)

    # -- internals -------------------------------------------------------------------

    def _advance(self) -> float:
        now = self._clock()
        if self._opened_at is not None:
            deadline = self._opened_at + self._duration_s
            if now >= deadline:
                if self._pending is not None:
                    self._refuse_pending(Refusal.EXPIRED, deadline)
                self._close()
                self._record(EventKind.WINDOW_EXPIRED, deadline)
        if self._overlap_at is not None and now >= self._overlap_at + self._overlap_shown_s:
            self._overlap_at = None
            self._version += 1
        horizon = now - self._lookback_s
        stale = [key for key, seen in self._contacts.items() if seen < horizon]
        for key in stale:
            del self._contacts[key]
        return now

    def _remember(self, key: bytes, now: float) -> bool:
        """Note a contact; True if this key was not already remembered."""
        new = key not in self._contacts
        self._contacts.pop(key, None)  # re-insert: dict order is then oldest-seen first
        self._contacts[key] = now
        while len(self._contacts) > MAX_REMEMBERED_CONTACTS:
            del self._contacts[next(iter(self._contacts))]
        return new

    def _other_device_seen(self, key: bytes) -> bool:
        assert self._opened_at is not None
        if self._window_key is not None and self._window_key != key:
            return True
        since = self._opened_at - self._lookback_s
        return any(other != key and seen >= since for other, seen in self._contacts.items())

    def _pending_ticket(self, ticket_id: str) -> AttemptTicket:
        ticket = self._pending
        if ticket is None or ticket.ticket_id != ticket_id:
            raise TicketNotPending(ticket_id)
        return ticket

    def _decide(
        self,
        ticket: AttemptTicket,
        outcome: PairingOutcome,
        now: float,
        confirmed_by: ConfirmedBy | None,
    ) -> None:
        attempt = ticket.attempt
        self._pending = None
        self._verdicts.append((ticket.ticket_id, outcome))
        if outcome.accepted:
            self._record_attempt(
                EventKind.ACCEPTED, now, attempt, None, ticket.ticket_id, confirmed_by
            )
        else:
            self._record_attempt(EventKind.REFUSED, now, attempt, outcome.refusal, ticket.ticket_id)
        self._last_result = LastResult(
            outcome.accepted, outcome.refusal, attempt.device_name, attempt.method, now
        )
        # The admin has now seen this device: it no longer makes the next window ambiguous.
        self._contacts.pop(attempt.noise_key, None)
        self._close()

    def _refuse_pending(self, why: Refusal, at: float) -> None:
        ticket = self._pending
        assert ticket is not None
        self._pending = None
        self._verdicts.append((ticket.ticket_id, PairingOutcome.refuse(why)))
        self._record_attempt(EventKind.REFUSED, at, ticket.attempt, why, ticket.ticket_id)
        attempt = ticket.attempt
        self._last_result = LastResult(False, why, attempt.device_name, attempt.method, at)

    def _cancel(self, now: float) -> None:
        if self._pending is not None:
            self._refuse_pending(Refusal.CANCELLED, now)
        self._close()
        self._record(EventKind.WINDOW_CANCELLED, now)

    def _overlap(self, now: float, newcomer: PairingAttempt | None, key: bytes) -> None:
        if self._pending is not None:
            self._refuse_pending(Refusal.OVERLAP, now)
        if newcomer is not None:
            self._record_attempt(EventKind.REFUSED, now, newcomer, Refusal.OVERLAP)
        self._close()
        self._overlap_at = now
        self._last_result = LastResult(False, Refusal.OVERLAP, None, PairingMethod.BUTTON, now)
        self._record(EventKind.OVERLAP, now, noise_key=key)

    def _close(self) -> None:
        self._opened_at = None
        self._window_key = None
        self._version += 1

    def _record(self, kind: EventKind, at: float, *, noise_key: bytes | None = None) -> None:
        self._events.append(PairingEvent(kind, at, PairingMethod.BUTTON, noise_key=noise_key))
        self._version += 1

    def _record_attempt(
        self,
        kind: EventKind,
        at: float,
        attempt: PairingAttempt,
        refusal: Refusal | None = None,
        ticket_id: str | None = None,
        confirmed_by: ConfirmedBy | None = None,
    ) -> None:
        self._events.append(attempt_event(kind, at, attempt, refusal, ticket_id, confirmed_by))
        self._version += 1


# The value types live in pairing.events; they stay importable from here too.
__all__ = [
    "DEFAULT_LOOKBACK_S",
    "DEFAULT_OVERLAP_SHOWN_S",
    "DEFAULT_WINDOW_S",
    "AttemptTicket",
    "ConfirmedBy",
    "EventKind",
    "LastResult",
    "PairingEvent",
    "PairingStatus",
    "PairingWindow",
    "PressEffect",
    "attempt_event",
    "new_ticket_id",
]
