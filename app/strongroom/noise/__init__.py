"""The Noise Protocol Framework (revision 34), suite 25519_ChaChaPoly_BLAKE2b, sans-I/O.

Bytes in, bytes out: no sockets, no event loop. Typical use::

    hs = HandshakeState.initialize("Noise_IK_25519_ChaChaPoly_BLAKE2b", True, prologue, s=sk, rs=pk)
    wire = hs.write_message(b"hello")          # ... send, receive reply ...
    hs.read_message(reply)
    session = TransportSession.from_handshake(hs)
    session.encrypt(b"record")

Every failure raises a subclass of :class:`NoiseError` and leaves state unchanged.
"""

from strongroom.noise.cipherstate import CipherState
from strongroom.noise.connection import NoiseConnection
from strongroom.noise.errors import (
    ConfigurationError,
    DecryptError,
    HandshakeComplete,
    HandshakeNotComplete,
    InvalidPublicKey,
    MessageTooLarge,
    NoiseError,
    NonceExhausted,
    NotYourTurn,
    TruncatedMessage,
    UnsupportedProtocol,
    WrongDirection,
    WrongPhase,
)
from strongroom.noise.handshake import HandshakeState
from strongroom.noise.patterns import HandshakePattern, Protocol, parse_protocol_name
from strongroom.noise.primitives import (
    DHLEN,
    HASHLEN,
    MAX_MESSAGE_LEN,
    KeyPair,
    generate_keypair,
)
from strongroom.noise.symmetricstate import SymmetricState
from strongroom.noise.transport import MAX_PLAINTEXT_LEN, TransportSession

__all__ = [
    "DHLEN",
    "HASHLEN",
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "CipherState",
    "ConfigurationError",
    "DecryptError",
    "HandshakeComplete",
    "HandshakeNotComplete",
    "HandshakePattern",
    "HandshakeState",
    "InvalidPublicKey",
    "KeyPair",
    "MessageTooLarge",
    "NoiseConnection",
    "NoiseError",
    "NonceExhausted",
    "NotYourTurn",
    "Protocol",
    "SymmetricState",
    "TransportSession",
    "TruncatedMessage",
    "UnsupportedProtocol",
    "WrongDirection",
    "WrongPhase",
    "generate_keypair",
    "parse_protocol_name",
]
