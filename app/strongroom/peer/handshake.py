"""Which Noise handshake a connection runs, and how both sides set it up.

The first WebSocket message of a connection is one selector byte followed by
Noise message 1. The selector is also mixed into the prologue
(b"strongroom/1" + selector), so a man in the middle who rewrites it (to
downgrade QR pairing to button pairing, say) breaks the handshake.
"""

from __future__ import annotations

from enum import IntEnum

import cbor2

from strongroom.noise import HandshakeState

PROLOGUE_PREFIX = b"strongroom/1"
SUITE = "25519_ChaChaPoly_BLAKE2b"
PAIR_SIGNING_CONTEXT = b"strongroom-pair-v1\x00"
PSK_BYTES = 32


class HandshakeKind(IntEnum):
    XX = 0x01  # button pairing: neither side knows the other's static key yet
    IK = 0x02  # a paired phone reconnecting: it knows the box's static key
    XXPSK3 = 0x03  # QR pairing: both sides know the one-time secret from the QR code

    @property
    def protocol_name(self) -> str:
        pattern = {HandshakeKind.XX: "XX", HandshakeKind.IK: "IK", HandshakeKind.XXPSK3: "XXpsk3"}
        return f"Noise_{pattern[self]}_{SUITE}"

    @property
    def prologue(self) -> bytes:
        return PROLOGUE_PREFIX + bytes([self.value])

    @property
    def messages(self) -> int:
        return 2 if self is HandshakeKind.IK else 3


class UnknownSelector(ValueError):
    """The first message names no handshake this box speaks."""


def split_first_message(message: bytes) -> tuple[HandshakeKind, bytes]:
    """(handshake kind, Noise message 1) from a connection's first WebSocket message."""
    if not message:
        raise UnknownSelector("empty first message")
    try:
        kind = HandshakeKind(message[0])
    except ValueError:
        raise UnknownSelector(f"unknown handshake selector 0x{message[0]:02x}") from None
    return kind, message[1:]


def responder(kind: HandshakeKind, box_static_private: bytes, psk: bytes | None) -> HandshakeState:
    """The box's side of a handshake of `kind` (psk only, and required, for XXpsk3)."""
    return HandshakeState.initialize(
        kind.protocol_name,
        False,
        kind.prologue,
        s=box_static_private,
        psks=[psk] if kind is HandshakeKind.XXPSK3 and psk is not None else [],
    )


def initiator(
    kind: HandshakeKind,
    phone_static_private: bytes,
    box_static_public: bytes | None = None,
    psk: bytes | None = None,
) -> HandshakeState:
    """The phone's side: IK needs the box's static key, XXpsk3 the QR secret."""
    return HandshakeState.initialize(
        kind.protocol_name,
        True,
        kind.prologue,
        s=phone_static_private,
        rs=box_static_public if kind is HandshakeKind.IK else None,
        psks=[psk] if kind is HandshakeKind.XXPSK3 and psk is not None else [],
    )


def box_payload(box_sign_public: bytes, commitment: bytes | None) -> bytes:
    """The payload of the box's handshake message (message 2).

    It carries the box's Ed25519 key, so the phone can check the box fingerprint (from
    mDNS or the QR code) before sending anything, and in XX/XXpsk3 the commitment to the
    box's comparison-code nonce (strongroom.pairing.codes: commit, then reveal).
    """
    fields: dict[str, object] = {"v": 1, "sign_key": box_sign_public}
    if commitment is not None:
        fields["commit"] = commitment
    return cbor2.dumps(fields, canonical=True)


def _payload_map(payload: bytes, who: str) -> dict[object, object]:
    try:
        value = cbor2.loads(payload)
    except Exception as exc:  # cbor2 raises several types on garbage
        raise ValueError(f"the {who}'s handshake payload is not CBOR") from exc
    if not isinstance(value, dict) or value.get("v") != 1:
        raise ValueError(f"unsupported {who} handshake payload version")
    return value


def _bytes32(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return value


def parse_box_payload(payload: bytes) -> tuple[bytes, bytes | None]:
    """(box Ed25519 public key, code commitment or None); ValueError if malformed."""
    value = _payload_map(payload, "box")
    commitment = value.get("commit")
    return (
        _bytes32(value.get("sign_key"), "the box's signing key"),
        None if commitment is None else _bytes32(commitment, "the code commitment"),
    )


def phone_payload(code_nonce: bytes) -> bytes:
    """The payload of the phone's XX/XXpsk3 message 3: its comparison-code nonce."""
    return cbor2.dumps({"v": 1, "nonce": code_nonce}, canonical=True)


def parse_phone_payload(payload: bytes) -> bytes:
    """The phone's comparison-code nonce from message 3; ValueError if malformed."""
    return _bytes32(_payload_map(payload, "phone").get("nonce"), "the phone's code nonce")


def pair_message(handshake_hash: bytes) -> bytes:
    """What a phone signs with its device key in the `pair` frame (binds key to session)."""
    return PAIR_SIGNING_CONTEXT + handshake_hash
