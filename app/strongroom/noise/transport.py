"""TransportSession: the two post-handshake CipherStates, strictly in order.

Each transport message is one Noise message (at most 65535 bytes, so at most
65519 bytes of plaintext); callers chunk larger data. Nonces are implicit,
so a replayed, dropped or reordered message fails authentication with
:class:`DecryptError` and the session stays usable for the genuine next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.noise import primitives
from strongroom.noise.cipherstate import CipherState
from strongroom.noise.errors import MessageTooLarge, TruncatedMessage, WrongDirection

if TYPE_CHECKING:
    from strongroom.noise.handshake import HandshakeState

MAX_MESSAGE_LEN = primitives.MAX_MESSAGE_LEN
MAX_PLAINTEXT_LEN = MAX_MESSAGE_LEN - primitives.TAGLEN
_TAGLEN = primitives.TAGLEN


class TransportSession:
    """Encrypts what we send and decrypts what the peer sends after the handshake."""

    __slots__ = ("_can_receive", "_can_send", "_handshake_hash", "_receiving", "_sending")

    def __init__(
        self,
        sending: CipherState,
        receiving: CipherState,
        *,
        handshake_hash: bytes = b"",
        can_send: bool = True,
        can_receive: bool = True,
    ) -> None:
        self._sending = sending
        self._receiving = receiving
        self._handshake_hash = handshake_hash
        self._can_send = can_send
        self._can_receive = can_receive

    @classmethod
    def from_handshake(cls, handshake: HandshakeState) -> TransportSession:
        """The session of a finished handshake; raises HandshakeNotComplete before that.

        In a one-way pattern (N, K, X) only the initiator may send.
        """
        sending, receiving = handshake.split()
        one_way = handshake.is_one_way
        initiator = handshake.is_initiator
        return cls(
            sending,
            receiving,
            handshake_hash=handshake.handshake_hash,
            can_send=initiator or not one_way,
            can_receive=not (initiator and one_way),
        )

    @property
    def handshake_hash(self) -> bytes:
        """The handshake's final h, for channel binding (e.g. signing it with a device key)."""
        return self._handshake_hash

    @property
    def sending(self) -> CipherState:
        """The CipherState for outgoing messages (its nonce counts messages sent)."""
        return self._sending

    @property
    def receiving(self) -> CipherState:
        """The CipherState for incoming messages (its nonce counts messages accepted)."""
        return self._receiving

    def encrypt(self, plaintext: bytes, ad: bytes = b"") -> bytes:
        """Encrypt one transport message of at most 65519 plaintext bytes."""
        if not self._can_send:
            raise WrongDirection("in a one-way pattern the responder cannot send")
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise MessageTooLarge(
                f"plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT_LEN}; chunk it"
            )
        return self._sending.encrypt_with_ad(ad, plaintext)

    def encrypt_into(self, buf: bytearray, start: int, size: int, ad: bytes = b"") -> None:
        """`encrypt` in place: the `size` plaintext bytes at buf[start:] become the
        transport message (ciphertext and tag: buf holds 16 bytes more after them)."""
        if not self._can_send:
            raise WrongDirection("in a one-way pattern the responder cannot send")
        if size > MAX_PLAINTEXT_LEN:
            raise MessageTooLarge(
                f"plaintext of {size} bytes exceeds {MAX_PLAINTEXT_LEN}; chunk it"
            )
        self._sending.encrypt_with_ad_into(ad, buf, start, size)

    def decrypt(self, ciphertext: bytes, ad: bytes = b"") -> bytes:
        """Authenticate and decrypt the peer's next transport message, in order."""
        self._check_incoming(ciphertext)
        return self._receiving.decrypt_with_ad(ad, ciphertext)

    def decrypt_mutable(self, ciphertext: bytes, ad: bytes = b"") -> bytearray:
        """`decrypt`, the plaintext in a bytearray of its own that the caller may slice
        with memoryviews (nothing copied out of libsodium's output)."""
        self._check_incoming(ciphertext)
        return self._receiving.decrypt_with_ad_mutable(ad, ciphertext)

    def _check_incoming(self, ciphertext: bytes) -> None:
        if not self._can_receive:
            raise WrongDirection("in a one-way pattern the initiator cannot receive")
        size = len(ciphertext)
        if size > MAX_MESSAGE_LEN:
            raise MessageTooLarge(f"transport message of {size} bytes exceeds 65535")
        if size < _TAGLEN:
            raise TruncatedMessage(f"transport message of {size} bytes is shorter than its tag")

    def rekey_send(self) -> None:
        """Rekey our sending key (spec 11.3); the peer must call rekey_receive in step."""
        self._sending.rekey()

    def rekey_receive(self) -> None:
        """Rekey the receiving key, mirroring the peer's rekey_send."""
        self._receiving.rekey()
