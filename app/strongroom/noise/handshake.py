"""HandshakeState (Noise spec section 5.3): runs a handshake pattern, sans-I/O.

``write_message(payload) -> bytes`` and ``read_message(message) -> payload``
are transactional: each works on a copy of the symmetric state and commits
only when the whole message has been processed, so a truncated, forged or
oversized message (or a failed write) leaves the handshake exactly as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from strongroom.noise import primitives
from strongroom.noise.cipherstate import CipherState
from strongroom.noise.errors import (
    ConfigurationError,
    HandshakeComplete,
    HandshakeNotComplete,
    MessageTooLarge,
    NotYourTurn,
    TruncatedMessage,
)
from strongroom.noise.patterns import Protocol, Token, parse_protocol_name
from strongroom.noise.primitives import KeyPair, check_public_key, dh
from strongroom.noise.symmetricstate import SymmetricState

_DHLEN = primitives.DHLEN
_TAGLEN = primitives.TAGLEN
_MAX_MESSAGE_LEN = primitives.MAX_MESSAGE_LEN


class HandshakeState:
    """One side of a Noise handshake for the 25519_ChaChaPoly_BLAKE2b suite."""

    __slots__ = (
        "_ciphers",
        "_e",
        "_final_hash",
        "_initiator",
        "_message_index",
        "_protocol",
        "_psk_index",
        "_psks",
        "_re",
        "_rs",
        "_s",
        "_symmetric",
    )

    def __init__(
        self,
        protocol_name: str,
        initiator: bool,
        *,
        prologue: bytes = b"",
        s: bytes | None = None,
        e: bytes | None = None,
        rs: bytes | None = None,
        re: bytes | None = None,
        psks: Sequence[bytes] = (),
    ) -> None:
        """Initialize(): ``s``/``e`` are 32-byte raw private keys, ``rs``/``re`` public keys.

        ``e`` is only for test vectors (a fixed ephemeral); leave it None otherwise.
        """
        protocol = parse_protocol_name(protocol_name)
        pattern = protocol.pattern
        self._protocol: Protocol = protocol
        self._initiator = bool(initiator)
        self._s = None if s is None else KeyPair.from_private(s)
        self._e = None if e is None else KeyPair.from_private(e)
        for remote in (rs, re):
            if remote is not None:
                check_public_key(remote)
        self._rs = rs
        self._re = re
        if any(len(psk) != 32 for psk in psks):
            raise ConfigurationError("a pre-shared key is 32 bytes")
        if len(psks) != pattern.psk_count:
            raise ConfigurationError(
                f"{pattern.name} needs {pattern.psk_count} pre-shared key(s), got {len(psks)}"
            )
        self._psks = tuple(psks)
        self._psk_index = 0
        self._message_index = 0
        self._ciphers: tuple[CipherState, CipherState] | None = None
        self._final_hash: bytes | None = None

        local_pre, remote_pre = (
            (pattern.initiator_premessage, pattern.responder_premessage)
            if self._initiator
            else (pattern.responder_premessage, pattern.initiator_premessage)
        )
        if self._s is None and ("s" in local_pre or pattern.sends(self._initiator, "s")):
            raise ConfigurationError(f"{pattern.name} needs our static key s")
        if "s" in remote_pre and rs is None:
            raise ConfigurationError(f"{pattern.name} needs the peer's static public key rs")
        if "e" in remote_pre and re is None:
            raise ConfigurationError(f"{pattern.name} needs the peer's ephemeral public key re")
        if rs is not None and pattern.sends(not self._initiator, "s"):
            raise ConfigurationError(f"{pattern.name} transmits the peer's static key; omit rs")

        symmetric = SymmetricState(protocol_name.encode("ascii"))
        symmetric.mix_hash(prologue)
        # Pre-messages are hashed initiator first, whatever our role (spec 5.3).
        initiator_keys = (self._s, self._e) if self._initiator else (rs, re)
        responder_keys = (rs, re) if self._initiator else (self._s, self._e)
        for tokens, (static, ephemeral) in (
            (pattern.initiator_premessage, initiator_keys),
            (pattern.responder_premessage, responder_keys),
        ):
            for step in tokens:
                key = static if step == "s" else ephemeral
                if key is None:
                    raise ConfigurationError(f"{pattern.name} needs the pre-message key {step}")
                public = key.public if isinstance(key, KeyPair) else key
                symmetric.mix_hash(public)
                if step == "e" and protocol.is_psk:
                    symmetric.mix_key(public)
        self._symmetric = symmetric

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
    ) -> HandshakeState:
        """Positional-friendly spelling of the constructor, mirroring the spec's Initialize()."""
        return cls(protocol_name, initiator, prologue=prologue, s=s, e=e, rs=rs, re=re, psks=psks)

    # -- introspection -------------------------------------------------------------------

    @property
    def protocol_name(self) -> str:
        """The full protocol name, e.g. ``Noise_IK_25519_ChaChaPoly_BLAKE2b``."""
        return self._protocol.name

    @property
    def is_initiator(self) -> bool:
        """Whether this side sends the first handshake message."""
        return self._initiator

    @property
    def is_one_way(self) -> bool:
        """Whether the pattern is N, K or X (only the initiator sends transport messages)."""
        return self._protocol.pattern.one_way

    @property
    def is_complete(self) -> bool:
        """Whether every handshake message has been written or read."""
        return self._ciphers is not None

    @property
    def is_my_turn(self) -> bool:
        """Whether the next handshake message is ours to write (False once complete)."""
        if self._ciphers is not None:
            return False
        return (self._message_index % 2 == 0) == self._initiator

    @property
    def handshake_hash(self) -> bytes:
        """h: a 64-byte transcript hash; after completion, a channel-binding value."""
        if self._final_hash is not None:
            return self._final_hash
        return self._symmetric.handshake_hash

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key once known (pre-shared or received), else None."""
        return self._rs

    @property
    def local_static_public(self) -> bytes | None:
        """Our static public key, if we have one."""
        return None if self._s is None else self._s.public

    def split(self) -> tuple[CipherState, CipherState]:
        """(send, receive) CipherStates for this side; raises HandshakeNotComplete before the end.

        The pair is computed once at completion, so calling this twice returns the same objects.
        """
        if self._ciphers is None:
            raise HandshakeNotComplete("the handshake is not finished yet")
        c1, c2 = self._ciphers
        return (c1, c2) if self._initiator else (c2, c1)

    # -- messages ------------------------------------------------------------------------

    def _check_turn(self, writing: bool) -> tuple[Token, ...]:
        if self._ciphers is not None:
            raise HandshakeComplete("the handshake is already complete")
        if self.is_my_turn != writing:
            raise NotYourTurn(
                "it is the peer's turn to send" if writing else "it is our turn to send"
            )
        return self._protocol.pattern.messages[self._message_index]

    def _mix_dh(
        self,
        symmetric: SymmetricState,
        step: Token,
        e: KeyPair | None,
        rs: bytes | None,
        re: bytes | None,
    ) -> None:
        """MixKey(DH(...)) for ee/es/se/ss, with the keys of the message in progress."""
        s = self._s
        # es = DH(initiator's e, responder's s); se = DH(initiator's s, responder's e).
        if step == "ee":
            local, remote = e, re
        elif step == "ss":
            local, remote = s, rs
        elif (step == "es") == self._initiator:
            local, remote = e, rs
        else:
            local, remote = s, re
        if local is None or remote is None:
            raise ConfigurationError(f"token {step} needs a key this side does not have")
        symmetric.mix_key(dh(local.private, remote))

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload): the next handshake message to send to the peer."""
        tokens = self._check_turn(writing=True)
        if len(payload) > _MAX_MESSAGE_LEN:
            raise MessageTooLarge(f"payload of {len(payload)} bytes exceeds 65535")
        symmetric = self._symmetric.copy()
        e = self._e
        psk_index = self._psk_index
        is_psk = self._protocol.is_psk
        parts: list[bytes] = []
        for step in tokens:
            if step == "e":
                if e is None:
                    e = primitives.generate_keypair()
                parts.append(e.public)
                symmetric.mix_hash(e.public)
                if is_psk:
                    symmetric.mix_key(e.public)
            elif step == "s":
                assert self._s is not None  # guaranteed by the constructor's checks
                parts.append(symmetric.encrypt_and_hash(self._s.public))
            elif step == "psk":
                symmetric.mix_key_and_hash(self._psks[psk_index])
                psk_index += 1
            else:
                self._mix_dh(symmetric, step, e, self._rs, self._re)
        parts.append(symmetric.encrypt_and_hash(payload))
        message = b"".join(parts)
        if len(message) > _MAX_MESSAGE_LEN:
            raise MessageTooLarge(f"handshake message of {len(message)} bytes exceeds 65535")
        self._e = e
        self._commit(symmetric, psk_index)
        return message

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message): process the peer's handshake message and return its payload."""
        tokens = self._check_turn(writing=False)
        if len(message) > _MAX_MESSAGE_LEN:
            raise MessageTooLarge(f"handshake message of {len(message)} bytes exceeds 65535")
        symmetric = self._symmetric.copy()
        rs, re = self._rs, self._re
        psk_index = self._psk_index
        is_psk = self._protocol.is_psk
        pos = 0
        for step in tokens:
            if step == "e":
                if len(message) - pos < _DHLEN:
                    raise TruncatedMessage("handshake message ends inside an ephemeral key")
                re = message[pos : pos + _DHLEN]
                pos += _DHLEN
                check_public_key(re)
                symmetric.mix_hash(re)
                if is_psk:
                    symmetric.mix_key(re)
            elif step == "s":
                size = _DHLEN + _TAGLEN if symmetric.has_key else _DHLEN
                if len(message) - pos < size:
                    raise TruncatedMessage("handshake message ends inside a static key")
                rs = symmetric.decrypt_and_hash(message[pos : pos + size])
                pos += size
                check_public_key(rs)
            elif step == "psk":
                symmetric.mix_key_and_hash(self._psks[psk_index])
                psk_index += 1
            else:
                self._mix_dh(symmetric, step, self._e, rs, re)
        rest = message[pos:]
        if symmetric.has_key and len(rest) < _TAGLEN:
            raise TruncatedMessage("handshake message ends inside the payload's tag")
        payload = symmetric.decrypt_and_hash(rest)
        self._rs, self._re = rs, re
        self._commit(symmetric, psk_index)
        return payload

    def _commit(self, symmetric: SymmetricState, psk_index: int) -> None:
        self._symmetric = symmetric
        self._psk_index = psk_index
        self._message_index += 1
        if self._message_index == len(self._protocol.pattern.messages):
            self._ciphers = symmetric.split()
            self._final_hash = symmetric.handshake_hash
            # The handshake secrets are no longer needed; drop our references to them.
            self._e = None
            self._psks = ()
