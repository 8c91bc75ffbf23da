"""Noise crypto functions for 25519_ChaChaPoly_BLAKE2b, all from PyNaCl (libsodium).

DH is X25519, the AEAD is IETF ChaCha20-Poly1305 with the nonce encoded as
32 zero bits followed by the 64-bit little-endian counter, HASH is
BLAKE2b-512, and HMAC/HKDF are built on it exactly as section 4.3 of the
Noise specification (revision 34) defines them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.utils

from strongroom.noise.errors import ConfigurationError, InvalidPublicKey

DHLEN = 32
HASHLEN = 64
BLOCKLEN = 128
KEYLEN = 32
TAGLEN = 16
MAX_MESSAGE_LEN = 65535
MAX_NONCE = 2**64 - 1

DH_NAME = "25519"
CIPHER_NAME = "ChaChaPoly"
HASH_NAME = "BLAKE2b"

# The seven X25519 points of small order (or on the twist with small order),
# as listed by libsodium; X25519 ignores the top bit, so inputs are compared
# with bit 255 cleared. A DH with any of them yields a key an attacker knows.
SMALL_ORDER_POINTS: frozenset[bytes] = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)

_NONCE = struct.Struct("<4xQ")
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_ZEROS32 = bytes(32)

_aead_encrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_aead_decrypt = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt
_blake2b = nacl.bindings.crypto_generichash_blake2b_salt_personal
_scalarmult = nacl.bindings.crypto_scalarmult
_scalarmult_base = nacl.bindings.crypto_scalarmult_base


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair; ``private`` is kept out of ``repr`` so it never lands in logs."""

    private: bytes = field(repr=False)
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """Derive the public key of a 32-byte raw private key."""
        if not isinstance(private, bytes) or len(private) != DHLEN:
            raise ConfigurationError(f"an X25519 private key is {DHLEN} raw bytes")
        return cls(private, _scalarmult_base(private))


def generate_keypair() -> KeyPair:
    """GENERATE_KEYPAIR(): a fresh X25519 key pair from the OS CSPRNG."""
    return KeyPair.from_private(nacl.utils.random(DHLEN))


def check_public_key(public: bytes) -> None:
    """Reject a remote public key of the wrong length or of small order."""
    if len(public) != DHLEN:
        raise InvalidPublicKey(f"an X25519 public key is {DHLEN} bytes, got {len(public)}")
    if public[31] & 0x80:
        public = public[:31] + bytes((public[31] & 0x7F,))
    if public in SMALL_ORDER_POINTS:
        raise InvalidPublicKey("public key is a small-order point")


def dh(private: bytes, public: bytes) -> bytes:
    """DH(key_pair, public_key): X25519, refusing small-order and all-zero results."""
    check_public_key(public)
    try:
        return _scalarmult(private, public)
    except nacl.exceptions.RuntimeError as exc:
        # libsodium refuses when the shared secret is all zeros (a low-order input).
        raise InvalidPublicKey("X25519 produced an all-zero shared secret") from exc


def encrypt(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    """ENCRYPT(k, n, ad, plaintext): ciphertext followed by the 16-byte tag."""
    return _aead_encrypt(plaintext, ad, _NONCE.pack(n), key)


def decrypt(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes:
    """DECRYPT(k, n, ad, ciphertext); raises nacl.exceptions.CryptoError on a bad tag,
    and on a ciphertext shorter than the tag (nacl.bindings' cffi call raised a bare
    ValueError, "negative array length", there)."""
    if len(ciphertext) < TAGLEN:
        raise nacl.exceptions.CryptoError("Decryption failed: shorter than the tag.")
    return _aead_decrypt(ciphertext, ad, _NONCE.pack(n), key)


# open_into(plain, key, nonce, ad, ciphertext): True and the plaintext in `plain`
# (len(ciphertext) - TAGLEN bytes), or False and `plain` all zeros.
OpenInto = Callable[[bytearray, bytes, bytes, bytes, bytes], bool]


def _open_copied(plain: bytearray, key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bool:
    """The fallback of `_open_into`: nacl.bindings' public function, then a copy."""
    try:
        plain[:] = _aead_decrypt(ciphertext, ad, nonce, key)
    except nacl.exceptions.CryptoError:
        plain[:] = bytes(len(plain))
        return False
    return True


def _bind_private() -> OpenInto | None:
    """libsodium's crypto_aead_chacha20poly1305_ietf_decrypt writing into the caller's
    buffer, through PyNaCl's own cffi module `nacl._sodium` (not PyNaCl's public API:
    one of the two private calls of the code, named in docs/threat-model.md). None when a
    PyNaCl release no longer has it: `_open_copied` then does the same, one copy more.
    libsodium checks the tag before it writes plaintext and zeroes the output when the
    check fails."""
    try:
        from nacl._sodium import ffi, lib  # type: ignore[import-not-found]

        function = lib.crypto_aead_chacha20poly1305_ietf_decrypt
        from_buffer, null = ffi.from_buffer, ffi.NULL
    except (ImportError, AttributeError):
        return None

    def open_into(plain: bytearray, key: bytes, nonce: bytes, ad: bytes, ciphertext: bytes) -> bool:
        status = function(
            from_buffer(plain),
            null,  # the plaintext's length: len(plain), libsodium accepts NULL
            null,
            ciphertext,
            len(ciphertext),
            ad if ad else null,
            len(ad),
            nonce,
            key,
        )
        return bool(status == 0)

    return open_into


_open_into: OpenInto = _bind_private() or _open_copied

# seal_into(buf, start, size, key, nonce, ad): the `size` plaintext bytes at buf[start:]
# replaced by their ciphertext, the tag written after them (buf has room for it).
SealInto = Callable[[bytearray, int, int, bytes, bytes, bytes], None]


def _seal_copied(
    buf: bytearray, start: int, size: int, key: bytes, nonce: bytes, ad: bytes
) -> None:
    """The fallback of `_seal_into`: nacl.bindings' public function, then a copy."""
    end = start + size
    buf[start : end + TAGLEN] = _aead_encrypt(bytes(buf[start:end]), ad, nonce, key)


def _bind_private_seal() -> SealInto | None:
    """libsodium's crypto_aead_chacha20poly1305_ietf_encrypt in place, in the caller's
    buffer (libsodium allows the ciphertext to be the plaintext's own bytes), through
    `nacl._sodium` as `_bind_private`; None when a PyNaCl release no longer has it."""
    try:
        from nacl._sodium import ffi, lib

        function = lib.crypto_aead_chacha20poly1305_ietf_encrypt
        from_buffer, null = ffi.from_buffer, ffi.NULL
    except (ImportError, AttributeError):
        return None

    def seal_into(
        buf: bytearray, start: int, size: int, key: bytes, nonce: bytes, ad: bytes
    ) -> None:
        at = from_buffer(buf) + start
        function(at, null, at, size, ad if ad else null, len(ad), null, nonce, key)

    return seal_into


_seal_into: SealInto = _bind_private_seal() or _seal_copied


def encrypt_into(key: bytes, n: int, ad: bytes, buf: bytearray, start: int, size: int) -> None:
    """ENCRYPT(k, n, ad, plaintext) in place: the plaintext is buf[start:start+size], the
    ciphertext and its tag take its place and the TAGLEN bytes after it. The box seals
    a blob_data frame where its WebSocket frame is built (peer/ws_send.py): nacl.bindings'
    wrapper encrypts into a buffer of its own and copies that into a new bytes object."""
    if len(key) != KEYLEN:
        raise ConfigurationError(f"a cipher key is {KEYLEN} bytes")
    if start < 0 or size < 0 or start + size + TAGLEN > len(buf):
        raise ValueError("the buffer has no room for the plaintext and its tag there")
    _seal_into(buf, start, size, key, _NONCE.pack(n), ad)


def decrypt_mutable(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytearray:
    """`decrypt`, the plaintext in a new bytearray that libsodium writes into, so a
    reader can take memoryview slices of it instead of copies (the phone's reader:
    peer/channel.open_views). nacl.bindings' wrapper decrypts into a buffer of its own
    and copies that into a new bytes object; with the slices after it, three copies
    of every byte of an attachment (callgrind: docs/benchmarks.md). The function is
    libsodium's through PyNaCl's private cffi binding (`_bind_private`; PyNaCl is
    pinned in pyproject.toml), or nacl.bindings' if a PyNaCl release drops that one;
    test_noise_decrypt_mutable checks both give what `decrypt` gives and refuse what
    it refuses. The key's size is checked here, the nonce is ours; a bad tag raises
    nacl.exceptions.CryptoError as `decrypt` does."""
    if len(key) != KEYLEN:
        raise ConfigurationError(f"a cipher key is {KEYLEN} bytes")
    size = len(ciphertext) - TAGLEN
    if size < 0:
        raise nacl.exceptions.CryptoError("Decryption failed.")
    plain = bytearray(size)
    if not _open_into(plain, key, _NONCE.pack(n), ad, ciphertext):
        raise nacl.exceptions.CryptoError("Decryption failed.")
    return plain


def rekey(key: bytes) -> bytes:
    """REKEY(k): the first 32 bytes of ENCRYPT(k, 2**64-1, empty, 32 zero bytes)."""
    return _aead_encrypt(_ZEROS32, b"", _NONCE.pack(MAX_NONCE), key)[:KEYLEN]


def hash_(data: bytes) -> bytes:
    """HASH(data): BLAKE2b with a 64-byte digest."""
    return _blake2b(data, HASHLEN)


def hmac_hash(key: bytes, data: bytes) -> bytes:
    """HMAC-HASH(key, data) per RFC 2104 with BLAKE2b and a 128-byte block."""
    if len(key) > BLOCKLEN:
        key = _blake2b(key, HASHLEN)
    padded = key.ljust(BLOCKLEN, b"\x00")
    inner = _blake2b(padded.translate(_IPAD) + data, HASHLEN)
    return _blake2b(padded.translate(_OPAD) + inner, HASHLEN)


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """HKDF(chaining_key, input_key_material, 2)."""
    temp_key = hmac_hash(chaining_key, ikm)
    out1 = hmac_hash(temp_key, b"\x01")
    out2 = hmac_hash(temp_key, out1 + b"\x02")
    return out1, out2


def hkdf3(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes, bytes]:
    """HKDF(chaining_key, input_key_material, 3)."""
    temp_key = hmac_hash(chaining_key, ikm)
    out1 = hmac_hash(temp_key, b"\x01")
    out2 = hmac_hash(temp_key, out1 + b"\x02")
    out3 = hmac_hash(temp_key, out2 + b"\x03")
    return out1, out2, out3
