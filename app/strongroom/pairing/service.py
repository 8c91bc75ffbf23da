"""The PairingGate the peer service talks to: the button window and the QR offer, on asyncio.

`PairingWindow` (pure rules) and `QrPairing` (the one-time secret) decide; this
class only adds waiting: `request()` parks the phone's connection on a future
until the admin confirms or rejects, the window expires, an overlap or a cancel.

Not thread-safe: call everything from the event loop's thread. The front panel
calls back on gpiozero's threads, so the box hops with `loop.call_soon_threadsafe(
service.press)`. `on_change` is called (on the loop) after every change of what
`status()` shows, so the box can refresh the LEDs and push the web UI countdown.

QR path: the peer service runs XXpsk3 with `qr_secret()` as the psk and calls
`consume_qr_secret()` whatever the outcome. Consuming a live secret grants one
"credit" valid for `qr_claim_grace_s`; the `request()` that follows the handshake
spends it and is accepted at once (the secret authenticated the phone: nobody else
could finish XXpsk3). A second phone that scanned the same code finds no credit and
is refused BAD_SECRET: one device per secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from strongroom.pairing.events import (
    AttemptTicket,
    ConfirmedBy,
    EventKind,
    LastResult,
    PairingEvent,
    PairingStatus,
    PressEffect,
    attempt_event,
)
from strongroom.pairing.gate import (
    PairingAttempt,
    PairingGate,
    PairingMethod,
    PairingOutcome,
    Refusal,
)
from strongroom.pairing.qr import DEFAULT_QR_TTL_S, QrOffer, QrPairing
from strongroom.pairing.window import (
    DEFAULT_LOOKBACK_S,
    DEFAULT_OVERLAP_SHOWN_S,
    DEFAULT_WINDOW_S,
    PairingWindow,
)

log = logging.getLogger(__name__)

# Time between the XXpsk3 handshake (which consumes the secret) and the phone's pair
# frame reaching `request()`.
DEFAULT_QR_CLAIM_GRACE_S = 30.0


class PairingService:
    """Implements `strongroom.pairing.gate.PairingGate`, plus the admin's controls."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        on_change: Callable[[], None] | None = None,
        window_s: float = DEFAULT_WINDOW_S,
        overlap_lookback_s: float = DEFAULT_LOOKBACK_S,
        overlap_shown_s: float = DEFAULT_OVERLAP_SHOWN_S,
        qr_ttl_s: float = DEFAULT_QR_TTL_S,
        qr_claim_grace_s: float = DEFAULT_QR_CLAIM_GRACE_S,
    ) -> None:
        self._clock = clock
        self._on_change = on_change
        self._window = PairingWindow(clock, window_s, overlap_lookback_s, overlap_shown_s)
        self._qr = QrPairing(clock, qr_ttl_s)
        self._qr_grace_s = qr_claim_grace_s
        self._qr_credit_until: float | None = None
        self._qr_result: LastResult | None = None
        self._qr_events: list[PairingEvent] = []
        self._waiters: dict[str, asyncio.Future[PairingOutcome]] = {}
        self._seen_version = self._window.version
        self._seen_qr_live = False
        self._dirty = False

    # -- the admin's controls (panel button, web UI, local admin API) ------------------

    def press(self) -> PressEffect:
        """A PAIR press: opens the window, confirms the pending attempt, or cancels."""
        effect = self._window.press()
        self._settle()
        return effect

    def cancel(self) -> bool:
        """Cancel the button window and clear the overlap display."""
        changed = self._window.cancel()
        self._settle()
        return changed

    def confirm(self, ticket_id: str) -> None:
        """Accept the pending attempt (raises TicketNotPending if it is over)."""
        try:
            self._window.confirm(ticket_id)
        finally:
            self._settle()

    def reject(self, ticket_id: str) -> None:
        """Refuse the pending attempt (raises TicketNotPending if it is over)."""
        try:
            self._window.reject(ticket_id)
        finally:
            self._settle()

    def issue_qr(self, box_address: str, port: int, fingerprint: str) -> QrOffer:
        """Show a new QR code (the previous one, if live, stops working)."""
        if self._qr.withdraw():
            self._qr_event(EventKind.QR_WITHDRAWN)
        offer = self._qr.issue(box_address, port, fingerprint)
        self._qr_event(EventKind.QR_ISSUED)
        self._settle()
        return offer

    def withdraw_qr(self) -> bool:
        """The admin closed the QR dialog: the secret stops working now."""
        withdrawn = self._qr.withdraw()
        if withdrawn:
            self._qr_event(EventKind.QR_WITHDRAWN)
        self._settle()
        return withdrawn

    def status(self) -> PairingStatus:
        """What the web UI and the panel show; `last_result` is the latest of both paths."""
        status = self._window.snapshot()
        self._settle()
        last = status.last_result
        if self._qr_result is not None and (last is None or self._qr_result.at >= last.at):
            last = self._qr_result
        qr_left = self._qr.seconds_left()
        return replace(status, last_result=last, qr_open=qr_left > 0, qr_seconds_left=qr_left)

    def tick(self) -> None:
        """Apply expiries; the box calls it about once a second (or runs `run`)."""
        self._window.tick()
        self._settle()

    async def run(self, interval_s: float = 1.0) -> None:
        """Tick forever (until cancelled), so that expiries show without any other event."""
        while True:
            self.tick()
            await asyncio.sleep(interval_s)

    def drain_events(self) -> list[PairingEvent]:
        """Every pairing event since the last call, oldest first, for the audit trail."""
        self._settle()
        events = self._window.drain_events() + self._qr_events
        self._qr_events = []
        return sorted(events, key=lambda event: event.at)  # stable: ties keep their order

    # -- the PairingGate the peer service calls ----------------------------------------

    def qr_secret(self) -> bytes | None:
        self._settle()
        return self._qr.current_secret()

    def consume_qr_secret(self) -> None:
        if self._qr.consume():
            self._qr_credit_until = self._clock() + self._qr_grace_s
            self._qr_event(EventKind.QR_USED)
        self._settle()

    def note_unknown_contact(self, noise_key: bytes) -> None:
        self._window.note_unknown_contact(noise_key)
        self._settle()

    async def request(self, attempt: PairingAttempt) -> PairingOutcome:
        if attempt.method is PairingMethod.QR:
            return self._request_qr(attempt)
        ticket = self._window.begin_attempt(attempt)
        if not isinstance(ticket, AttemptTicket):
            self._settle()
            return PairingOutcome.refuse(ticket)
        future: asyncio.Future[PairingOutcome] = asyncio.get_running_loop().create_future()
        self._waiters[ticket.ticket_id] = future
        self._settle()
        try:
            return await future
        except asyncio.CancelledError:
            # The phone's connection was closed while it waited: no verdict for it.
            self._waiters.pop(ticket.ticket_id, None)
            self._window.withdraw(ticket.ticket_id)
            self._settle()
            raise

    # -- internals ---------------------------------------------------------------------

    def _request_qr(self, attempt: PairingAttempt) -> PairingOutcome:
        now = self._clock()
        credit, self._qr_credit_until = self._qr_credit_until, None
        if credit is None or now > credit:
            outcome = PairingOutcome.refuse(Refusal.BAD_SECRET)
            self._qr_events.append(
                attempt_event(EventKind.REFUSED, now, attempt, Refusal.BAD_SECRET)
            )
        else:
            outcome = PairingOutcome.accept()
            self._qr_events.append(
                attempt_event(EventKind.ACCEPTED, now, attempt, confirmed_by=ConfirmedBy.QR_CODE)
            )
        self._qr_result = LastResult(
            outcome.accepted, outcome.refusal, attempt.device_name, PairingMethod.QR, now
        )
        self._dirty = True
        self._settle()
        return outcome

    def _qr_event(self, kind: EventKind, at: float | None = None) -> None:
        self._qr_events.append(
            PairingEvent(kind, self._clock() if at is None else at, PairingMethod.QR)
        )
        self._dirty = True

    def _settle(self) -> None:
        """Hand out verdicts, note QR expiry, and tell the box if anything changed."""
        expired = self._qr.expire_due()
        if expired is not None and expired.expires_at is not None:
            self._qr_event(EventKind.QR_EXPIRED, expired.expires_at)
        qr_live = self._qr.offer is not None
        if qr_live != self._seen_qr_live:
            self._seen_qr_live = qr_live
            self._dirty = True
        for ticket_id, outcome in self._window.take_verdicts():
            future = self._waiters.pop(ticket_id, None)
            if future is not None and not future.done():
                future.set_result(outcome)
        if self._window.version != self._seen_version:
            self._seen_version = self._window.version
            self._dirty = True
        if not self._dirty:
            return
        self._dirty = False
        if self._on_change is None:
            return
        try:
            self._on_change()
        except Exception:
            # A failing LED refresh must never decide a pairing.
            log.exception("pairing on_change callback failed")


if TYPE_CHECKING:

    def _is_a_gate(service: PairingService) -> PairingGate:
        return service  # mypy proves PairingService satisfies the PairingGate Protocol
