"""Handshake patterns (Noise spec sections 7, 9 and 18) and protocol-name parsing.

Covers the one-way patterns (N, K, X), the twelve fundamental interactive
patterns, the 23 deferred patterns (NK1 ... I1X1) and any combination of the
psk0..pskN modifiers. Messages always alternate initiator -> responder ->
initiator..., so a pattern is just its pre-messages and its token lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from strongroom.noise import primitives
from strongroom.noise.errors import UnsupportedProtocol

Token = Literal["e", "s", "ee", "es", "se", "ss", "psk"]
_TOKENS: frozenset[str] = frozenset(("e", "s", "ee", "es", "se", "ss", "psk"))

ONE_WAY_PATTERNS: frozenset[str] = frozenset(("N", "K", "X"))

# name: (initiator pre-message, responder pre-message, messages in order).
_BASE_PATTERNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # One-way (7.4).
    "N": ("", "s", ("e, es",)),
    "K": ("s", "s", ("e, es, ss",)),
    "X": ("", "s", ("e, es, s, ss",)),
    # Fundamental interactive (7.5).
    "NN": ("", "", ("e", "e, ee")),
    "NK": ("", "s", ("e, es", "e, ee")),
    "NX": ("", "", ("e", "e, ee, s, es")),
    "KN": ("s", "", ("e", "e, ee, se")),
    "KK": ("s", "s", ("e, es, ss", "e, ee, se")),
    "KX": ("s", "", ("e", "e, ee, se, s, es")),
    "XN": ("", "", ("e", "e, ee", "s, se")),
    "XK": ("", "s", ("e, es", "e, ee", "s, se")),
    "XX": ("", "", ("e", "e, ee, s, es", "s, se")),
    "IN": ("", "", ("e, s", "e, ee, se")),
    "IK": ("", "s", ("e, es, s, ss", "e, ee, se")),
    "IX": ("", "", ("e, s", "e, ee, se, s, es")),
    # Deferred (7.6 / 18.2).
    "NK1": ("", "s", ("e", "e, ee, es")),
    "NX1": ("", "", ("e", "e, ee, s", "es")),
    "X1N": ("", "", ("e", "e, ee", "s", "se")),
    "X1K": ("", "s", ("e, es", "e, ee", "s", "se")),
    "XK1": ("", "s", ("e", "e, ee, es", "s, se")),
    "X1K1": ("", "s", ("e", "e, ee, es", "s", "se")),
    "X1X": ("", "", ("e", "e, ee, s, es", "s", "se")),
    "XX1": ("", "", ("e", "e, ee, s", "es, s, se")),
    "X1X1": ("", "", ("e", "e, ee, s", "es, s", "se")),
    "K1N": ("s", "", ("e", "e, ee", "se")),
    "K1K": ("s", "s", ("e, es", "e, ee", "se")),
    "KK1": ("s", "s", ("e", "e, ee, se, es")),
    "K1K1": ("s", "s", ("e", "e, ee, es", "se")),
    "K1X": ("s", "", ("e", "e, ee, s, es", "se")),
    "KX1": ("s", "", ("e", "e, ee, se, s", "es")),
    "K1X1": ("s", "", ("e", "e, ee, s", "se, es")),
    "I1N": ("", "", ("e, s", "e, ee", "se")),
    "I1K": ("", "s", ("e, es, s", "e, ee", "se")),
    "IK1": ("", "s", ("e, s", "e, ee, se, es")),
    "I1K1": ("", "s", ("e, s", "e, ee, es", "se")),
    "I1X": ("", "", ("e, s", "e, ee, s, es", "se")),
    "IX1": ("", "", ("e, s", "e, ee, se, s", "es")),
    "I1X1": ("", "", ("e, s", "e, ee, s", "se, es")),
}

_PATTERN_RE = re.compile(r"^([A-Z][A-Z0-9]*?)((?:psk\d+)(?:\+psk\d+)*)?$")


def _tokens(spec: str) -> tuple[Token, ...]:
    out: list[Token] = []
    for raw in spec.split(","):
        token = raw.strip()
        if token:
            assert token in _TOKENS, token
            out.append(cast(Token, token))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class HandshakePattern:
    """A handshake pattern with its modifiers already applied."""

    name: str
    initiator_premessage: tuple[Token, ...]
    responder_premessage: tuple[Token, ...]
    messages: tuple[tuple[Token, ...], ...]
    one_way: bool

    @property
    def psk_count(self) -> int:
        """How many pre-shared keys the handshake consumes (one per psk token)."""
        return sum(message.count("psk") for message in self.messages)

    def sends(self, initiator: bool, token: Token) -> bool:
        """Whether the given side transmits ``token`` in some handshake message."""
        first = 0 if initiator else 1
        return any(token in message for message in self.messages[first::2])


@dataclass(frozen=True, slots=True)
class Protocol:
    """A parsed protocol name such as ``Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b``."""

    name: str
    pattern: HandshakePattern

    @property
    def is_psk(self) -> bool:
        """Whether this is a PSK handshake (the ``e`` token then also calls MixKey)."""
        return self.pattern.psk_count > 0


def handshake_pattern(name: str) -> HandshakePattern:
    """Build the pattern named e.g. ``IK``, ``XXpsk3`` or ``NNpsk0+psk2``."""
    match = _PATTERN_RE.match(name)
    if match is None or match.group(1) not in _BASE_PATTERNS:
        raise UnsupportedProtocol(f"unknown or unsupported handshake pattern {name!r}")
    base, modifiers = match.group(1), match.group(2)
    initiator_pre, responder_pre, specs = _BASE_PATTERNS[base]
    messages = [list(_tokens(spec)) for spec in specs]
    seen: set[int] = set()
    for modifier in modifiers.split("+") if modifiers else ():
        position = int(modifier[3:])
        if position in seen or position > len(messages) or modifier != f"psk{position}":
            raise UnsupportedProtocol(f"invalid psk modifier {modifier!r} in {name!r}")
        seen.add(position)
        # psk0 goes at the start of the first message, pskN at the end of message N.
        if position == 0:
            messages[0].insert(0, "psk")
        else:
            messages[position - 1].append("psk")
    return HandshakePattern(
        name=name,
        initiator_premessage=_tokens(initiator_pre),
        responder_premessage=_tokens(responder_pre),
        messages=tuple(tuple(message) for message in messages),
        one_way=base in ONE_WAY_PATTERNS,
    )


def parse_protocol_name(protocol_name: str) -> Protocol:
    """Parse ``Noise_<pattern>_25519_ChaChaPoly_BLAKE2b``; other suites are refused."""
    parts = protocol_name.split("_")
    if len(parts) != 5 or parts[0] != "Noise":
        raise UnsupportedProtocol(f"malformed Noise protocol name {protocol_name!r}")
    _, pattern_name, dh_name, cipher_name, hash_name = parts
    if (dh_name, cipher_name, hash_name) != (
        primitives.DH_NAME,
        primitives.CIPHER_NAME,
        primitives.HASH_NAME,
    ):
        raise UnsupportedProtocol(
            f"only 25519_ChaChaPoly_BLAKE2b is implemented, not {protocol_name!r}"
        )
    return Protocol(name=protocol_name, pattern=handshake_pattern(pattern_name))
