"""CipherState (Noise spec section 5.1): a cipher key plus a 64-bit nonce counter.

The nonce only advances after a successful encrypt or decrypt, so a rejected
message leaves the state exactly as it was. Nonce 2**64-1 is reserved for
:meth:`CipherState.rekey` and is never used for a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import nacl.exceptions

from strongroom.noise import primitives
from strongroom.noise.errors import (
    ConfigurationError,
    DecryptError,
    NonceExhausted,
    TruncatedMessage,
    WrongPhase,
)

_aead_encrypt = primitives.encrypt
_aead_decrypt = primitives.decrypt
_aead_decrypt_mutable = primitives.decrypt_mutable
_MAX_NONCE = primitives.MAX_NONCE
_TAGLEN = primitives.TAGLEN
Plain = TypeVar("Plain", bytes, bytearray)


class CipherState:
    """Holds ``k`` (None until keyed) and ``n``; encrypts/decrypts with associated data."""

    __slots__ = ("_key", "_nonce")

    def __init__(self, key: bytes | None = None, nonce: int = 0) -> None:
        self._key: bytes | None = None
        self._nonce = 0
        if key is not None:
            self.initialize_key(key)
        self.set_nonce(nonce)

    def initialize_key(self, key: bytes) -> None:
        """InitializeKey(key): set the key and reset the nonce to zero."""
        if len(key) != primitives.KEYLEN:
            raise ConfigurationError(f"a cipher key is {primitives.KEYLEN} bytes")
        self._key = key
        self._nonce = 0

    def has_key(self) -> bool:
        """HasKey(): whether a key has been set (before that, encryption is the identity)."""
        return self._key is not None

    @property
    def nonce(self) -> int:
        """The nonce the next encrypt/decrypt will use."""
        return self._nonce

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce): for out-of-order schemes and for tests of nonce exhaustion."""
        if not 0 <= nonce <= _MAX_NONCE:
            raise ConfigurationError("a nonce is a 64-bit unsigned integer")
        self._nonce = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext): AEAD-encrypt and advance the nonce."""
        key = self._key
        if key is None:
            return plaintext
        n = self._nonce
        if n == _MAX_NONCE:
            raise NonceExhausted("nonce 2**64-1 is reserved; rekey or start a new session")
        ciphertext = _aead_encrypt(key, n, ad, plaintext)
        self._nonce = n + 1
        return ciphertext

    def encrypt_with_ad_into(self, ad: bytes, buf: bytearray, start: int, size: int) -> None:
        """`encrypt_with_ad` in place (primitives.encrypt_into): the plaintext at
        buf[start:start+size] becomes the ciphertext, followed by its tag."""
        key = self._key
        if key is None:
            raise WrongPhase("a CipherState without a key adds no tag: use encrypt_with_ad")
        n = self._nonce
        if n == _MAX_NONCE:
            raise NonceExhausted("nonce 2**64-1 is reserved; rekey or start a new session")
        primitives.encrypt_into(key, n, ad, buf, start, size)
        self._nonce = n + 1

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext): verify, decrypt, advance the nonce only on success."""
        key = self._key
        if key is None:
            return ciphertext
        return self._decrypt(_aead_decrypt, key, ad, ciphertext)

    def decrypt_with_ad_mutable(self, ad: bytes, ciphertext: bytes) -> bytearray:
        """`decrypt_with_ad`, the plaintext in a bytearray of its own (libsodium's output,
        not copied: primitives.decrypt_mutable)."""
        key = self._key
        if key is None:
            return bytearray(ciphertext)
        return self._decrypt(_aead_decrypt_mutable, key, ad, ciphertext)

    def _decrypt(
        self, aead: Callable[[bytes, int, bytes, bytes], Plain], key: bytes, ad: bytes, data: bytes
    ) -> Plain:
        n = self._nonce
        if n == _MAX_NONCE:
            raise NonceExhausted("nonce 2**64-1 is reserved; rekey or start a new session")
        if len(data) < _TAGLEN:
            raise TruncatedMessage(f"message of {len(data)} bytes is shorter than its tag")
        try:
            plaintext = aead(key, n, ad, data)
        except nacl.exceptions.CryptoError as exc:
            raise DecryptError(
                "authentication failed: message forged, corrupted, replayed or out of order"
            ) from exc
        self._nonce = n + 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): replace k with REKEY(k); the nonce is left unchanged (spec section 11.3)."""
        if self._key is None:
            raise WrongPhase("cannot rekey a CipherState that has no key")
        self._key = primitives.rekey(self._key)

    def copy(self) -> CipherState:
        """An independent copy, used to process handshake messages transactionally."""
        clone = CipherState.__new__(CipherState)
        clone._key = self._key
        clone._nonce = self._nonce
        return clone
