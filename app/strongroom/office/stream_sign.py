"""An Ed25519 signature over a message read twice as chunks, never held whole.

A bundle's MANIFEST.sha256 has one line per file: six per exported record, so
55 MB for a 100,000-message matter. `SigningKey.sign` needs the message in one
piece and copies it about three times (the signed message, its bytes, the
split), which alone broke the box's memory aim. Ed25519 (RFC 8032 §5.1.6)
reads the message only through two SHA-512 hashes, so the manifest is
regenerated from its compressed form for each.

Every group operation is libsodium's, through PyNaCl's bindings (scalar
reduction, multiplication, addition, base-point multiplication); only the two
SHA-512 hashes are streamed here. The signature is byte for byte the one
`SigningKey.sign` makes (libsodium's Ed25519 is deterministic): the tests
compare them, and `openssl pkeyutl -verify -rawin` checks it in VERIFY.txt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from nacl.bindings import (
    crypto_core_ed25519_scalar_add,
    crypto_core_ed25519_scalar_mul,
    crypto_core_ed25519_scalar_reduce,
    crypto_scalarmult_ed25519_base_noclamp,
)
from nacl.signing import SigningKey

_ZERO32 = bytes(32)


def _digest(start: bytes, chunks: Iterable[bytes]) -> bytes:
    hashed = hashlib.sha512(start)
    for chunk in chunks:
        hashed.update(chunk)
    return hashed.digest()


def sign_chunks(key: SigningKey, message: Callable[[], Iterable[bytes]]) -> bytes:
    """The 64-byte signature of the concatenated chunks; `message()` is called twice
    and must give the same bytes each time."""
    expanded = hashlib.sha512(bytes(key)).digest()  # bytes(key) is the 32-byte seed
    scalar = bytearray(expanded[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    a = crypto_core_ed25519_scalar_reduce(bytes(scalar) + _ZERO32)
    r = crypto_core_ed25519_scalar_reduce(_digest(expanded[32:], message()))
    big_r = crypto_scalarmult_ed25519_base_noclamp(r)
    k = crypto_core_ed25519_scalar_reduce(_digest(big_r + bytes(key.verify_key), message()))
    return big_r + crypto_core_ed25519_scalar_add(r, crypto_core_ed25519_scalar_mul(k, a))
