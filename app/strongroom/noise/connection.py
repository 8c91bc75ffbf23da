"""NoiseConnection: one sans-I/O object per peer session, handshake then transport.

The network layer feeds it bytes and sends what it returns; it switches from
the handshake to the transport phase by itself and refuses transport calls
until the handshake is complete.
"""

from __future__ import annotations

from collections.abc import Sequence

from strongroom.noise.errors import HandshakeNotComplete
from strongroom.noise.handshake import HandshakeState
from strongroom.noise.transport import TransportSession


class NoiseConnection:
    """Wraps a HandshakeState and, once it completes, the TransportSession it yields."""

    __slots__ = ("_handshake", "_transport")

    def __init__(self, handshake: HandshakeState) -> None:
        self._handshake = handshake
        self._transport: TransportSession | None = None
        if handshake.is_complete:
            self._transport = TransportSession.from_handshake(handshake)

    @classmethod
    def initialize(
        cls,
        protocol_name: str,
        initiator: bool,
        prologue: bytes = b"",
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> NoiseConnection:
        """Same arguments as :meth:`HandshakeState.initialize`."""
        return cls(
            HandshakeState.initialize(protocol_name, initiator, prologue, s, e, rs, re, psks)
        )

    @property
    def handshake(self) -> HandshakeState:
        """The underlying handshake (remote_static, handshake_hash, is_my_turn...)."""
        return self._handshake

    @property
    def transport(self) -> TransportSession:
        """The transport session; raises HandshakeNotComplete before the handshake ends."""
        if self._transport is None:
            raise HandshakeNotComplete("the handshake is not finished yet")
        return self._transport

    @property
    def is_handshake_complete(self) -> bool:
        """Whether transport messages can be exchanged."""
        return self._transport is not None

    def write_handshake(self, payload: bytes = b"") -> bytes:
        """The next handshake message to send."""
        message = self._handshake.write_message(payload)
        if self._handshake.is_complete:
            self._transport = TransportSession.from_handshake(self._handshake)
        return message

    def read_handshake(self, message: bytes) -> bytes:
        """Process the peer's handshake message; returns its payload."""
        payload = self._handshake.read_message(message)
        if self._handshake.is_complete:
            self._transport = TransportSession.from_handshake(self._handshake)
        return payload

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt a transport message; HandshakeNotComplete during the handshake."""
        return self.transport.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt the peer's next transport message; HandshakeNotComplete during the handshake."""
        return self.transport.decrypt(ciphertext)
