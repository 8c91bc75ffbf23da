"""Tor v3 client authorisation keys and file formats (x25519, base32).

The box's tor holds one `authorized_clients/<name>.auth` file per phone:

    descriptor:x25519:<public key, base32, 52 characters>

and a phone's tor one `<name>.auth_private` file in its ClientOnionAuthDir:

    <onion address without .onion>:descriptor:x25519:<private key, base32>

A phone without its private key cannot decrypt the service's descriptor, so it
cannot even learn the introduction points: the refusal happens inside Tor.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from nacl.public import PrivateKey, PublicKey

ONION = re.compile(r"[a-z2-7]{56}\.onion")
_KEY_B32 = re.compile(r"[A-Z2-7]{52}")
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


class ReachKeyError(ValueError):
    """A key, address or client name that tor would refuse (or misread)."""


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def unb32(text: str) -> bytes:
    if not _KEY_B32.fullmatch(text):
        raise ReachKeyError("an x25519 key is 52 base32 characters (A-Z, 2-7)")
    raw = base64.b32decode(text + "====")
    if b32(raw) != text:
        raise ReachKeyError("the key is not canonically encoded")
    return raw


def check_onion(address: str) -> str:
    if not ONION.fullmatch(address):
        raise ReachKeyError("not a v3 onion address (56 base32 characters + .onion)")
    return address


def check_client_name(name: str) -> str:
    if not CLIENT_NAME.fullmatch(name):
        raise ReachKeyError("a client name is 1-40 of a-z, 0-9 and '-'")
    return name


def device_client_name(device_id: int) -> str:
    """The .auth file of a paired phone: one per device id, so revocation finds it."""
    return f"device-{int(device_id)}"


@dataclass(frozen=True)
class ClientAuthKey:
    """One phone's onion-auth key pair; the private half goes to the phone only."""

    private: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> ClientAuthKey:
        return cls(bytes(PrivateKey.generate()))

    @property
    def public(self) -> bytes:
        return bytes(PrivateKey(self.private).public_key)

    @property
    def public_b32(self) -> str:
        return b32(self.public)

    @property
    def private_b32(self) -> str:
        return b32(self.private)


def service_auth_line(public_b32: str) -> str:
    """The content of the box's `authorized_clients/<name>.auth` file."""
    unb32(public_b32)
    return f"descriptor:x25519:{public_b32}\n"


def client_auth_line(onion: str, private_b32: str) -> str:
    """The content of a phone tor's `<name>.auth_private` file."""
    check_onion(onion)
    unb32(private_b32)
    return f"{onion.removesuffix('.onion')}:descriptor:x25519:{private_b32}\n"


def public_of(private_b32: str) -> str:
    return b32(bytes(PublicKey(bytes(PrivateKey(unb32(private_b32)).public_key))))
