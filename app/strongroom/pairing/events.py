"""What pairing tells the rest of the box: audit events, pending tickets, status.

Value types shared by the button window (`window`), the QR path and the asyncio
service (`service`), and read by the front panel (`panel_link`) and the web UI;
no rules live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import nacl.utils

from strongroom.pairing.gate import PairingAttempt, PairingMethod, Refusal


class PressEffect(StrEnum):
    """What a PAIR press did (the CLI and the web UI say it back to the person)."""

    OPENED = "opened"
    CANCELLED = "cancelled"
    CONFIRMED = "confirmed"


class EventKind(StrEnum):
    WINDOW_OPENED = "window-opened"
    WINDOW_CANCELLED = "window-cancelled"
    WINDOW_EXPIRED = "window-expired"
    UNKNOWN_CONTACT = "unknown-contact"  # an unknown phone finished a handshake
    ATTEMPT_PENDING = "attempt-pending"  # waiting for the admin to compare the code
    ATTEMPT_WITHDRAWN = "attempt-withdrawn"  # the phone went away before a decision
    ACCEPTED = "accepted"
    REFUSED = "refused"
    OVERLAP = "overlap"  # the window closed because two devices tried
    QR_ISSUED = "qr-issued"
    QR_USED = "qr-used"  # the one-time secret was consumed by a handshake
    QR_EXPIRED = "qr-expired"
    QR_WITHDRAWN = "qr-withdrawn"  # replaced by a new QR code or cancelled


class ConfirmedBy(StrEnum):
    BUTTON = "button"  # second PAIR press (the code was not compared)
    ADMIN = "admin"  # web UI / admin API after comparing the code
    QR_CODE = "qr-code"  # the one-time QR secret authenticated the phone


@dataclass(frozen=True)
class PairingEvent:
    """One audit-trail entry. `at` is on the injected clock (when it happened, which
    for an expiry is the deadline even if noticed later)."""

    kind: EventKind
    at: float
    method: PairingMethod | None = None
    refusal: Refusal | None = None
    ticket_id: str | None = None
    noise_key: bytes | None = None
    device_name: str | None = None
    owner: str | None = None
    comparison_code: str | None = None
    confirmed_by: ConfirmedBy | None = None


@dataclass(frozen=True)
class AttemptTicket:
    """A button attempt waiting for the admin; `ticket_id` is what confirm/reject name."""

    ticket_id: str
    attempt: PairingAttempt
    issued_at: float


@dataclass(frozen=True)
class LastResult:
    """How the most recent decided attempt (or overlap) ended."""

    accepted: bool
    refusal: Refusal | None
    device_name: str | None
    method: PairingMethod | None
    at: float


@dataclass(frozen=True)
class PairingStatus:
    """Everything the web UI and the front panel show about pairing, at `now`."""

    now: float
    open: bool
    seconds_left: float
    pending: AttemptTicket | None
    last_result: LastResult | None
    overlap: bool
    qr_open: bool = False
    qr_seconds_left: float = 0.0


def new_ticket_id() -> str:
    """An unguessable id, so that a stale page can never confirm a later attempt."""
    return nacl.utils.random(12).hex()


def attempt_event(
    kind: EventKind,
    at: float,
    attempt: PairingAttempt,
    refusal: Refusal | None = None,
    ticket_id: str | None = None,
    confirmed_by: ConfirmedBy | None = None,
) -> PairingEvent:
    """The audit event describing `attempt` (shared with the QR path of the service)."""
    return PairingEvent(
        kind,
        at,
        attempt.method,
        refusal,
        ticket_id,
        attempt.noise_key,
        attempt.device_name,
        attempt.owner,
        attempt.comparison_code,
        confirmed_by,
    )


__all__ = [
    "AttemptTicket",
    "ConfirmedBy",
    "EventKind",
    "LastResult",
    "PairingEvent",
    "PairingStatus",
    "PressEffect",
    "attempt_event",
    "new_ticket_id",
]
