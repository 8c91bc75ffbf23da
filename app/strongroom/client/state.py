"""What a phone remembers between runs: its keys, the box it paired with, its outbox.

Kept in a small JSON file (mode 0600) by the CLI. A real app keeps the same
fields in the platform's keystore.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from nacl.bindings import crypto_scalarmult_base
from nacl.signing import SigningKey

from strongroom.identity.atomic_file import write_atomically

STATE_VERSION = 1


class StateError(ValueError):
    """The device state file is missing a field or holds a malformed one."""


@dataclass
class DeviceState:
    """A phone's identity and pairing. Secrets are kept out of repr()."""

    name: str
    owner: str
    noise_private: bytes = field(repr=False)
    sign_seed: bytes = field(repr=False)
    device_id: int | None = None
    url: str | None = None
    box_noise_public: bytes | None = None
    box_sign_public: bytes | None = None
    box_fingerprint: str | None = None
    # Remote reach (from `paired`, when the box has it on): its onion and our x25519 key.
    onion: str | None = None
    onion_auth: str | None = field(default=None, repr=False)
    # Signed records pushed but not acknowledged yet: (record bytes, signature).
    outbox: list[tuple[bytes, bytes]] = field(default_factory=list, repr=False)
    # The last tree head verified from this box (client/heads.py): its later heads
    # must prove they extend it. Absent from state files written before.
    last_head: dict[str, Any] | None = None

    @classmethod
    def generate(cls, name: str, owner: str) -> DeviceState:
        """Fresh device keys: an X25519 Noise static key and an Ed25519 signing key."""
        return cls(name=name, owner=owner, noise_private=os.urandom(32), sign_seed=os.urandom(32))

    @property
    def noise_public(self) -> bytes:
        return crypto_scalarmult_base(self.noise_private)

    @cached_property
    def signing_key(self) -> SigningKey:
        return SigningKey(self.sign_seed)

    @property
    def paired(self) -> bool:
        return self.device_id is not None and self.box_noise_public is not None

    def to_json(self) -> dict[str, Any]:
        def hex_or_none(value: bytes | None) -> str | None:
            return None if value is None else value.hex()

        return {
            "version": STATE_VERSION,
            "name": self.name,
            "owner": self.owner,
            "noise_private": self.noise_private.hex(),
            "sign_seed": self.sign_seed.hex(),
            "device_id": self.device_id,
            "url": self.url,
            "box_noise_public": hex_or_none(self.box_noise_public),
            "box_sign_public": hex_or_none(self.box_sign_public),
            "box_fingerprint": self.box_fingerprint,
            "onion": self.onion,
            "onion_auth": self.onion_auth,
            "outbox": [[raw.hex(), sig.hex()] for raw, sig in self.outbox],
            "last_head": self.last_head,
        }

    @classmethod
    def from_json(cls, data: Any) -> DeviceState:
        try:
            if data["version"] != STATE_VERSION:
                raise StateError(f"unsupported state version {data['version']!r}")

            def key(name: str) -> bytes | None:
                value = data[name]
                if value is None:
                    return None
                raw = bytes.fromhex(value)
                if len(raw) != 32:
                    raise StateError(f"{name} must be 32 bytes")
                return raw

            noise_private, sign_seed = key("noise_private"), key("sign_seed")
            if noise_private is None or sign_seed is None:
                raise StateError("the device keys are missing")
            return cls(
                name=str(data["name"]),
                owner=str(data["owner"]),
                noise_private=noise_private,
                sign_seed=sign_seed,
                device_id=None if data["device_id"] is None else int(data["device_id"]),
                url=data["url"],
                box_noise_public=key("box_noise_public"),
                box_sign_public=key("box_sign_public"),
                box_fingerprint=data["box_fingerprint"],
                onion=data.get("onion"),
                onion_auth=data.get("onion_auth"),
                outbox=[(bytes.fromhex(r), bytes.fromhex(s)) for r, s in data["outbox"]],
                last_head=_head_or_none(data.get("last_head")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, StateError):
                raise
            raise StateError(f"malformed device state: {exc}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(self.to_json(), indent=2).encode())

    @classmethod
    def load(cls, path: Path) -> DeviceState:
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise StateError(f"no device state at {path}; pair first") from None
        except json.JSONDecodeError as exc:
            raise StateError(f"{path} is not JSON: {exc}") from exc


def _head_or_none(value: Any) -> dict[str, Any] | None:
    from strongroom.proof.sth import SignedTreeHead

    if value is None:
        return None
    try:
        return SignedTreeHead.from_dict(value).to_dict()
    except Exception as exc:
        raise StateError(f"malformed last_head: {exc}") from exc
