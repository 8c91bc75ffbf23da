"""Every cacophony vector for 25519_ChaChaPoly_BLAKE2b, byte for byte.

Handshake messages, the handshake hash on both sides, then the transport
messages. Messages alternate initiator -> responder -> initiator ... across
the whole list (one-way patterns: the initiator sends everything).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from strongroom.noise import HandshakeState, KeyPair, TransportSession

# A copy kept in the repository (provenance in tests/vectors/README.md):
# nothing the suite runs may read outside the clone.
VECTORS_PATH = Path(__file__).resolve().parent / "vectors" / "noise_25519_chachapoly_blake2b.json"
VECTORS_SHA256 = "1c62134eabd079611b0ddc86810792480c7bb50739e1ac8e2969bd8f0eb3323b"


def _load_vectors() -> list[dict[str, Any]]:
    # No skip when missing: a vanished vector file must turn the suite red.
    with VECTORS_PATH.open(encoding="utf-8") as handle:
        vectors: list[dict[str, Any]] = json.load(handle)["vectors"]
    return vectors


VECTORS = _load_vectors()


def _hex(vector: dict[str, Any], key: str) -> bytes | None:
    value = vector.get(key)
    return None if value is None else bytes.fromhex(value)


def _side(vector: dict[str, Any], prefix: str, initiator: bool) -> HandshakeState:
    return HandshakeState.initialize(
        vector["protocol_name"],
        initiator,
        prologue=bytes.fromhex(vector[f"{prefix}_prologue"]),
        s=_hex(vector, f"{prefix}_static"),
        e=_hex(vector, f"{prefix}_ephemeral"),
        rs=_hex(vector, f"{prefix}_remote_static"),
        psks=[bytes.fromhex(p) for p in vector.get(f"{prefix}_psks", [])],
    )


def test_vector_file_has_all_59_vectors() -> None:
    assert len(VECTORS) == 59


def test_vector_file_is_the_published_copy() -> None:
    # An edited vector would weaken the suite without turning it red.
    assert hashlib.sha256(VECTORS_PATH.read_bytes()).hexdigest() == VECTORS_SHA256


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    initiator = _side(vector, "init", True)
    responder = _side(vector, "resp", False)
    one_way = initiator.is_one_way
    init_session: TransportSession | None = None
    resp_session: TransportSession | None = None

    for index, message in enumerate(vector["messages"]):
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        init_sends = one_way or index % 2 == 0

        if init_session is None or resp_session is None:
            writer, reader = (initiator, responder) if init_sends else (responder, initiator)
            assert writer.write_message(payload) == expected, f"handshake message {index}"
            assert reader.read_message(expected) == payload
            if writer.is_complete:
                assert reader.is_complete
                handshake_hash = bytes.fromhex(vector["handshake_hash"])
                assert initiator.handshake_hash == handshake_hash
                assert responder.handshake_hash == handshake_hash
                init_session = TransportSession.from_handshake(initiator)
                resp_session = TransportSession.from_handshake(responder)
        else:
            sender, receiver = (
                (init_session, resp_session) if init_sends else (resp_session, init_session)
            )
            assert sender.encrypt(payload) == expected, f"transport message {index}"
            assert receiver.decrypt(expected) == payload

    assert init_session is not None and resp_session is not None, "handshake never completed"
    # Whoever learned the peer's static key (pre-shared or received) holds the right one.
    for side, peer_prefix in ((initiator, "resp"), (responder, "init")):
        peer_static = _hex(vector, f"{peer_prefix}_static")
        if side.remote_static is not None:
            assert peer_static is not None
            assert side.remote_static == KeyPair.from_private(peer_static).public
