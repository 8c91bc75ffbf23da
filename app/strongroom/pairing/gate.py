"""The contract between the peer protocol and the pairing rules.

The peer service finishes a Noise XX (button) or XXpsk3 (QR) handshake with
an unknown phone, reads its `pair` frame, and asks the gate. The gate decides
(window open? overlap? admin confirmed the comparison code?) and answers. The
peer service then registers the device in the archive and tells the phone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class PairingMethod(StrEnum):
    BUTTON = "button"  # Noise XX during an open window, confirmed by comparison code
    QR = "qr"  # Noise XXpsk3 with the one-time secret from the QR code


class Refusal(StrEnum):
    NO_WINDOW = "no-window"  # nobody pressed PAIR
    OVERLAP = "overlap"  # two unknown phones in one window: both refused
    REJECTED = "rejected"  # the admin pressed "reject"
    EXPIRED = "expired"  # the window closed before anyone confirmed
    CANCELLED = "cancelled"  # PAIR pressed again / window cancelled
    BAD_SECRET = "bad-secret"  # noqa: S105  (a refusal reason, not a secret)
    REVOKED = "revoked"  # this device key was revoked


@dataclass(frozen=True)
class PairingAttempt:
    """What the peer service knows about a phone asking to pair."""

    method: PairingMethod
    noise_key: bytes  # the phone's X25519 static public key (from the handshake)
    sign_key: bytes  # the phone's Ed25519 device key (from the pair frame, proven by signature)
    device_name: str
    owner: str
    handshake_hash: bytes
    comparison_code: str


@dataclass(frozen=True)
class PairingOutcome:
    accepted: bool
    refusal: Refusal | None = None

    @classmethod
    def accept(cls) -> PairingOutcome:
        return cls(True)

    @classmethod
    def refuse(cls, why: Refusal) -> PairingOutcome:
        return cls(False, why)


class PairingGate(Protocol):
    def qr_secret(self) -> bytes | None:
        """The current one-time QR secret (32 bytes) if a QR pairing is open, else None.

        The peer service uses it as the psk of an XXpsk3 handshake. Using it
        (successfully or not) consumes it: call `consume_qr_secret` after.
        """
        ...

    def consume_qr_secret(self) -> None: ...

    def note_unknown_contact(self, noise_key: bytes) -> None:
        """An unknown phone completed a handshake (button path): counts for overlap."""
        ...

    async def request(self, attempt: PairingAttempt) -> PairingOutcome:
        """Wait until the pairing is accepted or refused (by rule, admin or timeout)."""
        ...
