"""Helpers to write realistic records into an archive in tests."""

from __future__ import annotations

import os

from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.store import Archive
from support.records import signed_message as message


def new_phone(
    archive: Archive, owner: str = "maitre.durand", name: str = "Pixel"
) -> tuple[int, SigningKey]:
    key = SigningKey.generate()
    device_id = archive.write(
        writes.add_device(
            writes.NewDevice(
                sign_key=bytes(key.verify_key),
                noise_key=os.urandom(32),
                name=name,
                owner=owner,
                role="staff",
                method="test",
            )
        )
    )
    return int(device_id), key


__all__ = ["message", "new_phone"]  # message: a signed Record (support.records)
