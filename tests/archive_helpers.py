"""Helpers to write realistic records into an archive in tests."""

from __future__ import annotations

import itertools
import os
from typing import Any

from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.record import Record, parse_record, sign_record
from strongroom.archive.store import Archive

_counter = itertools.count()


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


def message(
    key: SigningKey,
    text: str,
    *,
    conv: str = "client-martin",
    direction: str = "out",
    at: int | None = None,
    **extra: Any,
) -> Record:
    n = next(_counter)
    fields: dict[str, Any] = {
        "v": 1,
        "kind": "message",
        "id": f"m-{n}-{os.urandom(4).hex()}",
        "conv": conv,
        "dir": direction,
        "from": "Maître Durand" if direction == "out" else "M. Martin",
        "at": at if at is not None else 1_700_000_000_000 + n,
        "text": text,
    }
    fields.update(extra)
    raw, sig = sign_record(key, fields)
    return parse_record(raw, sig, max_blob_size=1 << 30)
