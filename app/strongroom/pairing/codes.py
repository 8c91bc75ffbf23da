"""The short comparison code both sides of a pairing show, derived from the Noise handshake.

The phone and the box each compute the code from their own handshake hash `h`
(Noise spec §5.2: a 64-byte BLAKE2b transcript of every key and message of the
handshake). Equal `h` means both ran the handshake with each other; a
man-in-the-middle who runs two separate handshakes with his own keys ends up
with two different transcripts, so, unless he is lucky, two different codes.

Derivation (normative; docs/protocol.md quotes it)::

    digest = BLAKE2b(
        message  = "strongroom pairing comparison code v1" (ASCII, 37 bytes)
                   || h (64 bytes, the handshake hash after the last handshake message),
        key      = none (unkeyed),
        salt     = 16 zero bytes,
        personal = "strongroom-v1" + 3 zero bytes,
        digest_size = 8,
    )
    n    = digest read as an unsigned 64-bit big-endian integer, modulo 1 000 000
    code = n as 6 decimal digits with leading zeros, split "ddd ddd" by one space

The modulo bias (2^64 is not a multiple of 10^6) is below 10^-13: irrelevant.

Test vector: h = the 64 bytes 00 01 02 ... 3f  ->  digest 83dad9bf75cc14a9  ->  code "772 457".

Limit of this plain code (read before relying on it): a man-in-the-middle who
writes the LAST handshake message of one of his two handshakes can try many
values of that message (e.g. its payload) offline, in about a microsecond each,
until the two codes agree; 10^6 tries take seconds. The plain code therefore
detects a relaying attacker who does not grind, not a determined one.
`committed_comparison_code` closes that hole with a commit-then-reveal of one
random nonce per side (the construction of Bluetooth's numeric comparison):

    1. handshake message 2 (box -> phone) payload carries  C = code_commitment(N_box)
    2. handshake message 3 (phone -> box) payload carries  N_phone (32 random bytes)
    3. the box's first transport message reveals N_box; the phone checks
       verify_code_commitment(C, N_box) and refuses the pairing if it fails
    4. both show committed_comparison_code(h, N_phone, N_box)

Every value an attacker chooses is then fixed before the other side's random
nonce becomes known to him, so each attempt matches with probability 10^-6.
Commitment and committed code::

    C    = BLAKE2b("strongroom pairing code commitment v1" (37 bytes) || N_box (32 bytes),
                   unkeyed, salt zero, personal "strongroom-v1", digest_size 32)
    code = as above, over message "strongroom pairing comparison code v2" (37 bytes)
           || h (64) || N_phone (32) || N_box (32)

Test vectors: N_box = 32 bytes 0x11 ->
C = c356bc98cc7dcc7984e18197be0949775baedcf4407ff38a640e92bd11d6bdae;
h = 00 01 .. 3f, N_phone = 32 bytes 0x22, N_box = 32 bytes 0x11 -> code "592 640".
"""

from __future__ import annotations

import hmac

import nacl.encoding
import nacl.hash
import nacl.utils

HANDSHAKE_HASH_BYTES = 64  # HASHLEN of Noise's BLAKE2b
CODE_NONCE_BYTES = 32
CODE_DIGITS = 6

_PERSON = b"strongroom-v1"
_LABEL_CODE = b"strongroom pairing comparison code v1"
_LABEL_CODE_COMMITTED = b"strongroom pairing comparison code v2"
_LABEL_COMMITMENT = b"strongroom pairing code commitment v1"


def _blake2b(data: bytes, digest_size: int) -> bytes:
    return nacl.hash.blake2b(
        data, digest_size=digest_size, person=_PERSON, encoder=nacl.encoding.RawEncoder
    )


def _check(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")


def _six_digits(digest: bytes) -> str:
    n = int.from_bytes(digest, "big") % 10**CODE_DIGITS
    return f"{n // 1000:03d} {n % 1000:03d}"


def comparison_code(handshake_hash: bytes) -> str:
    """The plain 6-digit code "ddd ddd" for a finished handshake's hash (see module doc)."""
    _check("handshake_hash", handshake_hash, HANDSHAKE_HASH_BYTES)
    return _six_digits(_blake2b(_LABEL_CODE + handshake_hash, 8))


def new_code_nonce() -> bytes:
    """A fresh 32-byte nonce for the commit-then-reveal code."""
    return nacl.utils.random(CODE_NONCE_BYTES)


def code_commitment(box_nonce: bytes) -> bytes:
    """The 32-byte commitment the box sends before revealing `box_nonce`."""
    _check("box_nonce", box_nonce, CODE_NONCE_BYTES)
    return _blake2b(_LABEL_COMMITMENT + box_nonce, 32)


def verify_code_commitment(commitment: bytes, box_nonce: bytes) -> bool:
    """Whether `box_nonce` is the value the box committed to (constant time)."""
    if len(commitment) != 32 or len(box_nonce) != CODE_NONCE_BYTES:
        return False
    return hmac.compare_digest(code_commitment(box_nonce), commitment)


def committed_comparison_code(handshake_hash: bytes, phone_nonce: bytes, box_nonce: bytes) -> str:
    """The grinding-resistant 6-digit code (commit-then-reveal, see module doc)."""
    _check("handshake_hash", handshake_hash, HANDSHAKE_HASH_BYTES)
    _check("phone_nonce", phone_nonce, CODE_NONCE_BYTES)
    _check("box_nonce", box_nonce, CODE_NONCE_BYTES)
    message = _LABEL_CODE_COMMITTED + handshake_hash + phone_nonce + box_nonce
    return _six_digits(_blake2b(message, 8))
