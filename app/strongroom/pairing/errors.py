"""Failures of the pairing rules a caller can act on."""

from __future__ import annotations


class PairingError(Exception):
    """Base class of every pairing failure."""


class TicketNotPending(PairingError, LookupError):
    """Confirm/reject named an attempt that is not (or no longer) waiting for the admin.

    The web UI shows "this pairing attempt is over" and refreshes the status: the
    attempt was decided, expired, cancelled or withdrawn in the meantime.
    """


class InvalidQrOffer(PairingError, ValueError):
    """A scanned text is not a valid Strongroom pairing QR code (v1)."""
