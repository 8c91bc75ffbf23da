"""Exceptions raised by the Noise implementation.

Every failure a caller can act on has its own class; all derive from
:class:`NoiseError`, so ``except NoiseError`` is the one catch-all a network
layer needs to drop a peer. When any of these is raised by a read or write,
the state object that raised it is unchanged and still usable.
"""

from __future__ import annotations


class NoiseError(Exception):
    """Base class of every error raised by :mod:`strongroom.noise`."""


class ConfigurationError(NoiseError, ValueError):
    """The handshake was set up wrongly (missing key, bad key length, psk count...)."""


class UnsupportedProtocol(ConfigurationError):
    """The protocol name is malformed or names a pattern/primitive we do not implement."""


class MessageTooLarge(NoiseError):
    """A Noise message would exceed, or exceeds, the 65535-byte limit."""


class TruncatedMessage(NoiseError):
    """A received message is shorter than its pattern or AEAD tag requires."""


class DecryptError(NoiseError):
    """AEAD authentication failed: the message is forged, corrupted, replayed or reordered.

    Nonces are implicit counters, so a replayed or out-of-order transport
    message is indistinguishable from a forged one: it simply fails here.
    """


class InvalidPublicKey(NoiseError):
    """A public key has the wrong length, is of small order, or yields an all-zero DH."""


class NonceExhausted(NoiseError):
    """The cipher's nonce reached 2**64-1 (reserved); the session must be rekeyed or replaced."""


class WrongPhase(NoiseError):
    """An operation was called at a point of the protocol where it is not allowed."""


class HandshakeComplete(WrongPhase):
    """A handshake message was written or read after the handshake finished."""


class HandshakeNotComplete(WrongPhase):
    """Transport operations were requested before the handshake finished."""


class NotYourTurn(WrongPhase):
    """Writing when the peer must send the next handshake message, or reading when we must."""


class WrongDirection(WrongPhase):
    """In a one-way pattern, the responder tried to send or the initiator tried to receive."""
