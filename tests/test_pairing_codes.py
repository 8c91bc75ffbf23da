"""Comparison codes: the documented vectors, and real Noise XX handshakes with and without
a man-in-the-middle who relays with his own keys."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strongroom.noise import HandshakeState, generate_keypair
from strongroom.pairing.codes import (
    code_commitment,
    committed_comparison_code,
    comparison_code,
    new_code_nonce,
    verify_code_commitment,
)

XX = "Noise_XX_25519_ChaChaPoly_BLAKE2b"
H = bytes(range(64))


def test_documented_vector() -> None:
    assert comparison_code(H) == "772 457"


def test_vector_matches_an_independent_blake2b() -> None:
    # hashlib's BLAKE2b is a second implementation of the documented construction.
    digest = hashlib.blake2b(
        b"strongroom pairing comparison code v1" + H, digest_size=8, person=b"strongroom-v1"
    ).digest()
    n = int.from_bytes(digest, "big") % 1_000_000
    assert comparison_code(H) == f"{n:06d}"[:3] + " " + f"{n:06d}"[3:]


def test_committed_vectors() -> None:
    assert code_commitment(b"\x11" * 32).hex() == (
        "c356bc98cc7dcc7984e18197be0949775baedcf4407ff38a640e92bd11d6bdae"
    )
    assert committed_comparison_code(H, b"\x22" * 32, b"\x11" * 32) == "592 640"


@given(st.binary(min_size=64, max_size=64))
def test_codes_are_six_digits_in_two_groups(handshake_hash: bytes) -> None:
    assert re.fullmatch(r"\d{3} \d{3}", comparison_code(handshake_hash))


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_a_hash_of_the_wrong_size_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        comparison_code(bytes(size))


def handshake(initiator_s: bytes, responder_s: bytes) -> tuple[HandshakeState, HandshakeState]:
    """A complete Noise XX between two parties; returns (initiator, responder)."""
    initiator = HandshakeState(XX, True, s=initiator_s)
    responder = HandshakeState(XX, False, s=responder_s)
    responder.read_message(initiator.write_message())
    initiator.read_message(responder.write_message())
    responder.read_message(initiator.write_message())
    assert initiator.is_complete and responder.is_complete
    return initiator, responder


def test_both_sides_of_a_real_handshake_show_the_same_code() -> None:
    phone_key, box_key = generate_keypair(), generate_keypair()
    phone, box = handshake(phone_key.private, box_key.private)
    assert box.remote_static == phone_key.public
    assert comparison_code(phone.handshake_hash) == comparison_code(box.handshake_hash)


def test_two_handshakes_of_the_same_phone_show_different_codes() -> None:
    phone_key, box_key = generate_keypair(), generate_keypair()
    first, _ = handshake(phone_key.private, box_key.private)
    second, _ = handshake(phone_key.private, box_key.private)
    # Fresh ephemerals each time: a code read off an old attempt proves nothing.
    assert first.handshake_hash != second.handshake_hash


def test_a_relaying_man_in_the_middle_gets_different_codes_on_each_side() -> None:
    phone_key, box_key, mitm_key = generate_keypair(), generate_keypair(), generate_keypair()
    # phone <-> mitm (the mitm pretends to be the box) and mitm <-> box (pretends to be a phone)
    phone, mitm_as_box = handshake(phone_key.private, mitm_key.private)
    mitm_as_phone, box = handshake(mitm_key.private, box_key.private)
    assert phone.remote_static == mitm_key.public  # the phone talks to the mitm...
    assert box.remote_static == mitm_key.public  # ...and so does the box
    phone_code = comparison_code(phone.handshake_hash)
    box_code = comparison_code(box.handshake_hash)
    assert phone_code != box_code  # (a chance match would be a 1-in-a-million event)
    # The mitm can compute both codes, but cannot make the two sides show the same one.
    assert comparison_code(mitm_as_box.handshake_hash) == phone_code
    assert comparison_code(mitm_as_phone.handshake_hash) == box_code


def test_committed_codes_agree_on_a_real_handshake_and_differ_through_a_mitm() -> None:
    phone_key, box_key, mitm_key = generate_keypair(), generate_keypair(), generate_keypair()
    phone, box = handshake(phone_key.private, box_key.private)
    phone_nonce, box_nonce = new_code_nonce(), new_code_nonce()
    commitment = code_commitment(box_nonce)  # sent in message 2, before the phone's nonce
    assert verify_code_commitment(commitment, box_nonce)  # checked by the phone at reveal
    assert committed_comparison_code(
        phone.handshake_hash, phone_nonce, box_nonce
    ) == committed_comparison_code(box.handshake_hash, phone_nonce, box_nonce)

    phone2, _ = handshake(phone_key.private, mitm_key.private)
    _, box2 = handshake(mitm_key.private, box_key.private)
    mitm_nonce = new_code_nonce()
    assert committed_comparison_code(
        phone2.handshake_hash, phone_nonce, mitm_nonce
    ) != committed_comparison_code(box2.handshake_hash, mitm_nonce, box_nonce)


def test_a_commitment_does_not_open_to_another_nonce() -> None:
    box_nonce = new_code_nonce()
    commitment = code_commitment(box_nonce)
    assert not verify_code_commitment(commitment, new_code_nonce())
    assert not verify_code_commitment(commitment[:31], box_nonce)
    assert not verify_code_commitment(commitment, box_nonce[:31])
