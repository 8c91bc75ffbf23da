"""SymmetricState (Noise spec section 5.2): chaining key, handshake hash and a CipherState."""

from __future__ import annotations

from strongroom.noise import primitives
from strongroom.noise.cipherstate import CipherState

_hash = primitives.hash_
_KEYLEN = primitives.KEYLEN


class SymmetricState:
    """Absorbs every handshake token into ``ck`` and ``h``; splits into transport ciphers."""

    __slots__ = ("_chaining_key", "_cipher", "_hash")

    def __init__(self, protocol_name: bytes) -> None:
        """InitializeSymmetric(protocol_name)."""
        if len(protocol_name) <= primitives.HASHLEN:
            h = protocol_name.ljust(primitives.HASHLEN, b"\x00")
        else:
            h = _hash(protocol_name)
        self._hash = h
        self._chaining_key = h
        self._cipher = CipherState()

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): h, for channel binding once the handshake is done."""
        return self._hash

    @property
    def has_key(self) -> bool:
        """Whether handshake payloads and static keys are encrypted yet."""
        return self._cipher.has_key()

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(ikm)."""
        self._chaining_key, temp_k = primitives.hkdf2(self._chaining_key, input_key_material)
        self._cipher.initialize_key(temp_k[:_KEYLEN])

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data)."""
        self._hash = _hash(self._hash + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash(ikm), used for psk tokens."""
        self._chaining_key, temp_h, temp_k = primitives.hkdf3(
            self._chaining_key, input_key_material
        )
        self.mix_hash(temp_h)
        self._cipher.initialize_key(temp_k[:_KEYLEN])

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext)."""
        ciphertext = self._cipher.encrypt_with_ad(self._hash, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext)."""
        plaintext = self._cipher.decrypt_with_ad(self._hash, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the initiator-to-responder and responder-to-initiator CipherStates."""
        temp_k1, temp_k2 = primitives.hkdf2(self._chaining_key, b"")
        return CipherState(temp_k1[:_KEYLEN]), CipherState(temp_k2[:_KEYLEN])

    def copy(self) -> SymmetricState:
        """An independent copy, so a failed message can be discarded without side effects."""
        clone = SymmetricState.__new__(SymmetricState)
        clone._hash = self._hash
        clone._chaining_key = self._chaining_key
        clone._cipher = self._cipher.copy()
        return clone
