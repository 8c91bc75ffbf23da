"""Every rejection of strongroom.noise raises its own NoiseError subclass and changes nothing.

After each rejected message the same state object must go on to accept the
genuine message, exactly as if the bad one had never arrived.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import pytest

from strongroom.noise import (
    MAX_PLAINTEXT_LEN,
    CipherState,
    ConfigurationError,
    DecryptError,
    HandshakeComplete,
    HandshakeNotComplete,
    HandshakeState,
    InvalidPublicKey,
    KeyPair,
    MessageTooLarge,
    NoiseConnection,
    NoiseError,
    NonceExhausted,
    NotYourTurn,
    TransportSession,
    TruncatedMessage,
    UnsupportedProtocol,
    WrongDirection,
    WrongPhase,
    generate_keypair,
    primitives,
)

XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
IK = "Noise_IK_25519_ChaChaPoly_BLAKE2b"
NN = "Noise_NN_25519_ChaChaPoly_BLAKE2b"
N = "Noise_N_25519_ChaChaPoly_BLAKE2b"

ALICE = generate_keypair()
BOB = generate_keypair()

SMALL_ORDER = sorted(primitives.SMALL_ORDER_POINTS)
# X25519 ignores bit 255, so the same points with it set are just as dangerous.
SMALL_ORDER_HIGH_BIT = [p[:31] + bytes((p[31] | 0x80,)) for p in SMALL_ORDER]


def xx_pair() -> tuple[HandshakeState, HandshakeState]:
    initiator = HandshakeState.initialize(XX, True, b"strongroom", s=ALICE.private)
    responder = HandshakeState.initialize(XX, False, b"strongroom", s=BOB.private)
    return initiator, responder


def sessions() -> tuple[TransportSession, TransportSession]:
    initiator, responder = xx_pair()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    return TransportSession.from_handshake(initiator), TransportSession.from_handshake(responder)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


def test_every_error_is_a_noise_error() -> None:
    for cls in (
        ConfigurationError,
        UnsupportedProtocol,
        DecryptError,
        HandshakeComplete,
        HandshakeNotComplete,
        InvalidPublicKey,
        MessageTooLarge,
        NonceExhausted,
        NotYourTurn,
        TruncatedMessage,
        WrongDirection,
        WrongPhase,
    ):
        assert issubclass(cls, NoiseError)


# -- truncated ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 31, 32, 79, 80, 95])
def test_truncated_handshake_message_then_genuine_one(length: int) -> None:
    initiator, responder = xx_pair()
    responder.read_message(initiator.write_message())
    # XX message 2 here: e (32) + encrypted s (48) + "hello" (5) + payload tag (16) = 101 bytes.
    message = responder.write_message(b"hello")
    with pytest.raises(TruncatedMessage):
        initiator.read_message(message[:length])
    assert initiator.read_message(message) == b"hello"
    responder.read_message(initiator.write_message())
    assert initiator.handshake_hash == responder.handshake_hash


def test_truncated_first_message_of_nn() -> None:
    initiator = HandshakeState.initialize(NN, True)
    responder = HandshakeState.initialize(NN, False)
    message = initiator.write_message(b"x")
    with pytest.raises(TruncatedMessage):
        responder.read_message(message[:31])
    assert responder.read_message(message) == b"x"


@pytest.mark.parametrize("length", range(primitives.TAGLEN))
def test_truncated_transport_message_then_genuine_one(length: int) -> None:
    alice, bob = sessions()
    message = alice.encrypt(b"record")
    with pytest.raises(TruncatedMessage):
        bob.decrypt(message[:length])
    assert bob.decrypt(message) == b"record"


@pytest.mark.parametrize("mutable", [False, True])
@pytest.mark.parametrize("length", range(primitives.TAGLEN))
def test_cipher_state_refuses_a_message_shorter_than_its_tag(length: int, mutable: bool) -> None:
    """CipherState used on its own (no transport in front to measure the message)."""
    sender, receiver = CipherState(bytes(range(32))), CipherState(bytes(range(32)))
    sealed = sender.encrypt_with_ad(b"ad", b"record")
    read = receiver.decrypt_with_ad_mutable if mutable else receiver.decrypt_with_ad
    with pytest.raises(TruncatedMessage):
        read(b"ad", sealed[:length])
    assert receiver.nonce == 0
    assert read(b"ad", sealed) == b"record"


@pytest.mark.parametrize("length", range(primitives.TAGLEN))
def test_decrypt_refuses_a_short_input_as_it_refuses_a_bad_tag(length: int) -> None:
    """primitives.decrypt and decrypt_mutable: one exception for "this does not open"."""
    key = bytes(range(32))
    for decrypt in (primitives.decrypt, primitives.decrypt_mutable):
        with pytest.raises(nacl.exceptions.CryptoError):
            decrypt(key, 0, b"", primitives.encrypt(key, 0, b"", b"record")[:length])


# -- oversized ------------------------------------------------------------------------------


def test_oversized_handshake_payload_on_write_leaves_state_usable() -> None:
    initiator, responder = xx_pair()
    with pytest.raises(MessageTooLarge):
        initiator.write_message(bytes(65535 - 32 + 1))  # e is 32 bytes, payload in clear
    with pytest.raises(MessageTooLarge):
        initiator.write_message(bytes(70000))
    largest = bytes(65535 - 32)
    assert responder.read_message(initiator.write_message(largest)) == largest


def test_oversized_handshake_message_on_read() -> None:
    initiator, responder = xx_pair()
    genuine = initiator.write_message(b"hi")
    with pytest.raises(MessageTooLarge):
        responder.read_message(genuine + bytes(65536 - len(genuine)))
    assert responder.read_message(genuine) == b"hi"


def test_oversized_transport_plaintext_on_write() -> None:
    alice, bob = sessions()
    with pytest.raises(MessageTooLarge):
        alice.encrypt(bytes(MAX_PLAINTEXT_LEN + 1))
    assert alice.sending.nonce == 0
    message = alice.encrypt(bytes(MAX_PLAINTEXT_LEN))
    assert len(message) == 65535
    assert bob.decrypt(message) == bytes(MAX_PLAINTEXT_LEN)


def test_oversized_transport_message_on_read() -> None:
    alice, bob = sessions()
    genuine = alice.encrypt(b"record")
    with pytest.raises(MessageTooLarge):
        bob.decrypt(bytes(65536))
    assert bob.decrypt(genuine) == b"record"


# -- bad tag --------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 40, 90, -1])
def test_forged_handshake_message_then_genuine_one(index: int) -> None:
    initiator, responder = xx_pair()
    responder.read_message(initiator.write_message())
    message = responder.write_message(b"payload")
    with pytest.raises(DecryptError):
        initiator.read_message(flip(message, index % len(message)))
    assert initiator.read_message(message) == b"payload"
    assert initiator.remote_static == BOB.public


def test_responder_static_not_learned_from_a_forged_message() -> None:
    initiator, responder = xx_pair()
    responder.read_message(initiator.write_message())
    message = responder.write_message(b"payload")
    with pytest.raises(DecryptError):
        initiator.read_message(flip(message, len(message) - 1))
    assert initiator.remote_static is None


def test_forged_transport_message_then_genuine_one() -> None:
    alice, bob = sessions()
    genuine = alice.encrypt(b"record")
    with pytest.raises(DecryptError):
        bob.decrypt(flip(genuine, 3))
    with pytest.raises(DecryptError):
        bob.decrypt(b"\x00" * len(genuine))
    assert bob.receiving.nonce == 0
    assert bob.decrypt(genuine) == b"record"


def test_a_forged_message_decrypted_into_a_buffer_changes_nothing() -> None:
    # decrypt_mutable (the phone's reader: libsodium writes into a bytearray) refuses
    # what decrypt refuses, and keeps the nonce where it was.
    alice, bob = sessions()
    genuine = alice.encrypt(b"record", ad=b"header")
    for forged, ad in ((flip(genuine, 3), b"header"), (genuine, b"other"), (genuine[:16], b"")):
        with pytest.raises(DecryptError):
            bob.decrypt_mutable(forged, ad=ad)
    assert bob.receiving.nonce == 0
    with pytest.raises(TruncatedMessage):
        bob.decrypt_mutable(genuine[:15])
    plain = bob.decrypt_mutable(genuine, ad=b"header")
    assert isinstance(plain, bytearray) and plain == b"record"
    assert alice.decrypt_mutable(bob.encrypt(b"")) == b""


def test_wrong_associated_data_fails() -> None:
    alice, bob = sessions()
    message = alice.encrypt(b"record", ad=b"header")
    with pytest.raises(DecryptError):
        bob.decrypt(message, ad=b"other")
    assert bob.decrypt(message, ad=b"header") == b"record"


# -- replay and reorder ---------------------------------------------------------------------


def test_replayed_transport_message_is_rejected_and_says_so() -> None:
    alice, bob = sessions()
    first, second = alice.encrypt(b"one"), alice.encrypt(b"two")
    assert bob.decrypt(first) == b"one"
    with pytest.raises(DecryptError, match="replayed"):
        bob.decrypt(first)
    assert bob.decrypt(second) == b"two"


def test_reordered_transport_messages_are_rejected() -> None:
    alice, bob = sessions()
    first, second = alice.encrypt(b"one"), alice.encrypt(b"two")
    with pytest.raises(DecryptError, match="out of order"):
        bob.decrypt(second)
    assert bob.decrypt(first) == b"one"
    assert bob.decrypt(second) == b"two"


def test_message_reflected_back_to_its_sender_is_rejected() -> None:
    alice, bob = sessions()
    message = alice.encrypt(b"one")
    with pytest.raises(DecryptError):
        alice.decrypt(message)
    assert bob.decrypt(message) == b"one"


# -- invalid public keys --------------------------------------------------------------------


@pytest.mark.parametrize("point", SMALL_ORDER + SMALL_ORDER_HIGH_BIT, ids=lambda p: p.hex()[:8])
def test_small_order_ephemeral_is_rejected_then_genuine_accepted(point: bytes) -> None:
    initiator = HandshakeState.initialize(NN, True)
    responder = HandshakeState.initialize(NN, False)
    genuine = initiator.write_message(b"")
    with pytest.raises(InvalidPublicKey):
        responder.read_message(point)
    responder.read_message(genuine)
    initiator.read_message(responder.write_message(b""))
    assert initiator.handshake_hash == responder.handshake_hash


@pytest.mark.parametrize("point", SMALL_ORDER + SMALL_ORDER_HIGH_BIT, ids=lambda p: p.hex()[:8])
def test_small_order_static_is_rejected_at_initialize(point: bytes) -> None:
    with pytest.raises(InvalidPublicKey):
        HandshakeState.initialize(IK, True, s=ALICE.private, rs=point)


def test_small_order_static_received_in_a_handshake_is_rejected() -> None:
    # An NX responder whose "static key" is the identity point, encrypted properly.
    initiator = HandshakeState.initialize("Noise_NX_25519_ChaChaPoly_BLAKE2b", True)
    responder = HandshakeState.initialize("Noise_NX_25519_ChaChaPoly_BLAKE2b", False, s=BOB.private)
    responder.read_message(initiator.write_message())
    object.__setattr__(responder, "_s", KeyPair(BOB.private, SMALL_ORDER[1]))
    with pytest.raises(InvalidPublicKey):
        initiator.read_message(responder.write_message())
    assert initiator.remote_static is None


def test_wrong_length_public_key_is_rejected() -> None:
    with pytest.raises(InvalidPublicKey):
        HandshakeState.initialize(IK, True, s=ALICE.private, rs=BOB.public[:31])


def test_libsodium_all_zero_result_maps_to_invalid_public_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the explicit list disabled, libsodium's own refusal must still surface as ours.
    monkeypatch.setattr(primitives, "SMALL_ORDER_POINTS", frozenset())
    with pytest.raises(InvalidPublicKey):
        primitives.dh(ALICE.private, SMALL_ORDER[0])


def test_dh_with_a_valid_key_agrees_on_both_sides() -> None:
    assert primitives.dh(ALICE.private, BOB.public) == primitives.dh(BOB.private, ALICE.public)


# -- nonce exhaustion -----------------------------------------------------------------------


def test_send_nonce_exhaustion_is_refused_before_use() -> None:
    alice, bob = sessions()
    alice.sending.set_nonce(2**64 - 2)
    bob.receiving.set_nonce(2**64 - 2)
    assert bob.decrypt(alice.encrypt(b"last")) == b"last"
    with pytest.raises(NonceExhausted):
        alice.encrypt(b"one too many")
    assert alice.sending.nonce == 2**64 - 1


def test_receive_nonce_exhaustion_is_refused_before_use() -> None:
    alice, bob = sessions()
    bob.receiving.set_nonce(2**64 - 1)
    with pytest.raises(NonceExhausted):
        bob.decrypt(alice.encrypt(b"x"))


def test_nonce_outside_64_bits_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        CipherState(bytes(32)).set_nonce(2**64)


# -- phase and turn -------------------------------------------------------------------------


def test_write_and_read_after_completion_are_refused() -> None:
    initiator, responder = xx_pair()
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    last = initiator.write_message()
    responder.read_message(last)
    for side in (initiator, responder):
        with pytest.raises(HandshakeComplete):
            side.write_message(b"")
        with pytest.raises(HandshakeComplete):
            side.read_message(last)


def test_transport_before_completion_is_refused() -> None:
    initiator, _ = xx_pair()
    with pytest.raises(HandshakeNotComplete):
        TransportSession.from_handshake(initiator)
    with pytest.raises(HandshakeNotComplete):
        initiator.split()
    connection = NoiseConnection.initialize(XX, True, b"strongroom", s=ALICE.private)
    with pytest.raises(HandshakeNotComplete):
        connection.encrypt(b"too early")
    with pytest.raises(HandshakeNotComplete):
        connection.decrypt(bytes(32))


def test_writing_on_the_peers_turn_is_refused() -> None:
    initiator, responder = xx_pair()
    with pytest.raises(NotYourTurn):
        responder.write_message(b"")
    with pytest.raises(NotYourTurn):
        initiator.read_message(bytes(32))  # the initiator must speak first
    first = initiator.write_message()
    with pytest.raises(NotYourTurn):
        initiator.write_message(b"")
    responder.read_message(first)
    assert responder.is_my_turn and not initiator.is_my_turn


def test_one_way_pattern_only_lets_the_initiator_send() -> None:
    initiator = HandshakeState.initialize(N, True, rs=BOB.public)
    responder = HandshakeState.initialize(N, False, s=BOB.private)
    responder.read_message(initiator.write_message(b""))
    sender = TransportSession.from_handshake(initiator)
    receiver = TransportSession.from_handshake(responder)
    with pytest.raises(WrongDirection):
        receiver.encrypt(b"back")
    with pytest.raises(WrongDirection):
        sender.decrypt(bytes(16))
    assert receiver.decrypt(sender.encrypt(b"one-way")) == b"one-way"


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Noise_XX_448_ChaChaPoly_BLAKE2b",
        "Noise_XX_25519_AESGCM_BLAKE2b",
        "Noise_XX_25519_ChaChaPoly_SHA256",
        "Noise_QQ_25519_ChaChaPoly_BLAKE2b",
        "Noise_XXfallback_25519_ChaChaPoly_BLAKE2b",
        "Noise_NNpsk3_25519_ChaChaPoly_BLAKE2b",
        "Noise_NNpsk0+psk0_25519_ChaChaPoly_BLAKE2b",
        "Noise_NNpsk01_25519_ChaChaPoly_BLAKE2b",
        "NoiseXX_25519_ChaChaPoly_BLAKE2b",
        "",
    ],
)
def test_unsupported_protocol_names(name: str) -> None:
    with pytest.raises(UnsupportedProtocol):
        HandshakeState.initialize(name, True, s=ALICE.private, psks=[bytes(32)])


def test_missing_keys_and_psks_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize(XX, True)  # XX initiator sends s
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize(IK, True, s=ALICE.private)  # IK needs rs
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize("Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b", True, s=ALICE.private)
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize(NN, True, psks=[bytes(32)])
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize("Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b", True, psks=[bytes(31)])
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize(XX, True, s=ALICE.private[:31])
    with pytest.raises(ConfigurationError):
        HandshakeState.initialize(XX, True, s=ALICE.private, rs=BOB.public)  # XX sends rs


def test_psk_mismatch_fails_authentication_and_recovers() -> None:
    name = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2b"
    initiator = HandshakeState.initialize(name, True, psks=[b"\x01" * 32])
    wrong = HandshakeState.initialize(name, False, psks=[b"\x02" * 32])
    with pytest.raises(DecryptError):
        wrong.read_message(initiator.write_message(b"hi"))


# -- rekey ----------------------------------------------------------------------------------


def test_rekey_matches_the_spec_definition_and_keeps_the_nonce() -> None:
    key = bytes(range(32))
    cipher = CipherState(key)
    cipher.set_nonce(7)
    cipher.rekey()
    nonce = b"\x00" * 4 + (2**64 - 1).to_bytes(8, "little")
    expected = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt(bytes(32), b"", nonce, key)[
        :32
    ]
    assert cipher.nonce == 7
    assert cipher.encrypt_with_ad(b"", b"x") == CipherState(expected, 7).encrypt_with_ad(b"", b"x")


def test_rekey_in_step_keeps_talking_and_out_of_step_fails() -> None:
    alice, bob = sessions()
    assert bob.decrypt(alice.encrypt(b"before")) == b"before"
    alice.rekey_send()
    message = alice.encrypt(b"after")
    with pytest.raises(DecryptError):
        bob.decrypt(message)
    bob.rekey_receive()
    assert bob.decrypt(message) == b"after"


def test_rekey_without_a_key_is_a_wrong_phase() -> None:
    with pytest.raises(WrongPhase):
        CipherState().rekey()
