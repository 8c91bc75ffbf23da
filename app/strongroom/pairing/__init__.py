"""Pairing phones with the box: button window, comparison codes, QR, admission.

`gate` is the contract with the peer service; `window` the pure button rules
and `events` what they report (audit events, tickets, status);
`qr` the one-time QR secret; `codes` the comparison code; `service` puts them on
asyncio as the `PairingGate` the box hands to the peer service.
"""

from strongroom.pairing.codes import committed_comparison_code, comparison_code
from strongroom.pairing.errors import InvalidQrOffer, PairingError, TicketNotPending
from strongroom.pairing.events import (
    AttemptTicket,
    ConfirmedBy,
    EventKind,
    LastResult,
    PairingEvent,
    PairingStatus,
    PressEffect,
)
from strongroom.pairing.gate import (
    PairingAttempt,
    PairingGate,
    PairingMethod,
    PairingOutcome,
    Refusal,
)
from strongroom.pairing.qr import QrOffer, QrPairing, parse_offer
from strongroom.pairing.service import PairingService
from strongroom.pairing.window import PairingWindow

__all__ = [
    "AttemptTicket",
    "ConfirmedBy",
    "EventKind",
    "InvalidQrOffer",
    "LastResult",
    "PairingAttempt",
    "PairingError",
    "PairingEvent",
    "PairingGate",
    "PairingMethod",
    "PairingOutcome",
    "PairingService",
    "PairingStatus",
    "PairingWindow",
    "PressEffect",
    "QrOffer",
    "QrPairing",
    "Refusal",
    "TicketNotPending",
    "committed_comparison_code",
    "comparison_code",
    "parse_offer",
]
