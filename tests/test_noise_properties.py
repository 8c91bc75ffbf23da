"""Hypothesis properties of strongroom.noise.

Random payloads survive XX, IK and XXpsk3 handshakes and the transport that
follows; random bytes fed to read_message or decrypt either succeed or raise a
NoiseError subclass, never anything else, and never spoil the state.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.noise import (
    MAX_PLAINTEXT_LEN,
    HandshakeState,
    NoiseConnection,
    NoiseError,
    TransportSession,
    generate_keypair,
)

ALICE = generate_keypair()
BOB = generate_keypair()
PSK = bytes(range(32))

XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
IK = "Noise_IK_25519_ChaChaPoly_BLAKE2b"
XXPSK3 = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b"
PROTOCOLS = (XX, IK, XXPSK3)

payloads = st.binary(max_size=2048)


def make_pair(name: str, prologue: bytes = b"strongroom") -> tuple[HandshakeState, HandshakeState]:
    psks = [PSK] if "psk" in name else []
    rs = BOB.public if name == IK else None
    initiator = HandshakeState.initialize(name, True, prologue, s=ALICE.private, rs=rs, psks=psks)
    responder = HandshakeState.initialize(name, False, prologue, s=BOB.private, psks=psks)
    return initiator, responder


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(PROTOCOLS),
    handshake_payloads=st.lists(payloads, min_size=3, max_size=3),
    transport_payloads=st.lists(st.tuples(st.booleans(), payloads), max_size=8),
)
def test_random_payloads_round_trip(
    name: str, handshake_payloads: list[bytes], transport_payloads: list[tuple[bool, bytes]]
) -> None:
    initiator, responder = make_pair(name)
    writer, reader = initiator, responder
    for payload in handshake_payloads:
        if initiator.is_complete:
            break
        assert reader.read_message(writer.write_message(payload)) == payload
        writer, reader = reader, writer
    assert initiator.is_complete and responder.is_complete
    assert initiator.handshake_hash == responder.handshake_hash
    assert initiator.remote_static == BOB.public
    assert responder.remote_static == ALICE.public

    alice = TransportSession.from_handshake(initiator)
    bob = TransportSession.from_handshake(responder)
    for from_alice, payload in transport_payloads:
        sender, receiver = (alice, bob) if from_alice else (bob, alice)
        ciphertext = sender.encrypt(payload)
        assert len(ciphertext) == len(payload) + 16
        assert receiver.decrypt(ciphertext) == payload


@settings(max_examples=25, deadline=None)
@given(
    length=st.integers(min_value=MAX_PLAINTEXT_LEN - 64, max_value=MAX_PLAINTEXT_LEN),
    pattern=st.binary(min_size=1, max_size=64),
)
def test_near_maximum_transport_payloads_round_trip(length: int, pattern: bytes) -> None:
    # Large inputs are built from a short random pattern: hypothesis dislikes 64 KiB draws.
    payload = (pattern * (length // len(pattern) + 1))[:length]
    initiator, responder = make_pair(IK)
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    alice = TransportSession.from_handshake(initiator)
    bob = TransportSession.from_handshake(responder)
    assert bob.decrypt(alice.encrypt(payload)) == payload


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(PROTOCOLS),
    stage=st.integers(min_value=0, max_value=2),
    garbage=st.binary(max_size=300),
)
def test_random_handshake_input_raises_only_noise_errors(
    name: str, stage: int, garbage: bytes
) -> None:
    initiator, responder = make_pair(name)
    writer, reader = initiator, responder
    for _ in range(stage):
        if writer.is_complete:
            return
        reader.read_message(writer.write_message(b"ok"))
        writer, reader = reader, writer
    if reader.is_complete:
        return
    genuine = writer.write_message(b"genuine")
    try:
        reader.read_message(garbage)
    except NoiseError:
        # A rejected message changes nothing: the genuine one is still accepted.
        assert reader.read_message(genuine) == b"genuine"


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=200), from_alice=st.booleans())
def test_random_transport_input_raises_only_noise_errors(garbage: bytes, from_alice: bool) -> None:
    initiator, responder = make_pair(XX)
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    alice = TransportSession.from_handshake(initiator)
    bob = TransportSession.from_handshake(responder)
    sender, receiver = (alice, bob) if from_alice else (bob, alice)
    genuine = sender.encrypt(b"genuine")
    try:
        receiver.decrypt(garbage)
    except NoiseError:
        pass
    else:
        raise AssertionError("random bytes authenticated as a transport message")
    assert receiver.decrypt(genuine) == b"genuine"


@settings(max_examples=40, deadline=None)
@given(
    prologue_a=st.binary(max_size=32),
    prologue_b=st.binary(max_size=32),
)
def test_prologue_mismatch_is_detected(prologue_a: bytes, prologue_b: bytes) -> None:
    initiator = HandshakeState.initialize(IK, True, prologue_a, s=ALICE.private, rs=BOB.public)
    responder = HandshakeState.initialize(IK, False, prologue_b, s=BOB.private)
    message = initiator.write_message(b"hello")
    if prologue_a == prologue_b:
        assert responder.read_message(message) == b"hello"
    else:
        try:
            responder.read_message(message)
        except NoiseError:
            return
        raise AssertionError("a different prologue was accepted")


@settings(max_examples=30, deadline=None)
@given(hello=payloads, reply=payloads, records=st.lists(payloads, max_size=5))
def test_noise_connection_switches_to_transport_by_itself(
    hello: bytes, reply: bytes, records: list[bytes]
) -> None:
    phone = NoiseConnection.initialize(IK, True, b"p", s=ALICE.private, rs=BOB.public)
    box = NoiseConnection.initialize(IK, False, b"p", s=BOB.private)
    assert box.read_handshake(phone.write_handshake(hello)) == hello
    assert not box.is_handshake_complete
    assert phone.read_handshake(box.write_handshake(reply)) == reply
    assert phone.is_handshake_complete and box.is_handshake_complete
    assert box.handshake.remote_static == ALICE.public
    assert phone.transport.handshake_hash == box.transport.handshake_hash
    for record in records:
        assert box.decrypt(phone.encrypt(record)) == record
        assert phone.decrypt(box.encrypt(record)) == record
