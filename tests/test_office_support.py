"""Shared helpers for the records-office tests (this module holds no tests).

A box here is built from real 24-word entropy, so backups and restores derive
the same keys a real box would.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.record import parse_record, sign_record
from strongroom.archive.store import Archive
from strongroom.identity import BoxKeys, derive_box_keys
from strongroom.office.migrations import ensure_office_schema

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
T0 = 1_600_000_000_000  # 2020-09-13


@dataclass
class Box:
    data_dir: Path
    entropy: bytes
    keys: BoxKeys
    archive: Archive
    clock_ms: list[int]

    def close(self) -> None:
        self.archive.close()

    def reader_scalar(self, sql: str, *args: Any) -> Any:
        conn = self.archive.reader()
        try:
            return conn.execute(sql, args).fetchone()[0]
        finally:
            conn.close()


def open_box(data_dir: Path, entropy: bytes, now_ms: int = T0) -> Box:
    keys = derive_box_keys(entropy)
    clock_ms = [now_ms]
    archive = Archive.open(
        data_dir,
        keys.archive_key,
        keys.blob_key,
        keys.signing_key,
        clock=lambda: clock_ms[0] / 1000,
    )
    ensure_office_schema(archive.conn)
    return Box(data_dir, entropy, keys, archive, clock_ms)


def new_box(tmp_path: Path, name: str = "data") -> Box:
    return open_box(tmp_path / name, os.urandom(32))


def store(box: Box, key: SigningKey, device_id: int, owner: str, record: Any) -> int:
    result = box.archive.write(writes.store_record(record, device_id, owner))
    return int(result.log_index)


def say(
    box: Box,
    phone: tuple[int, SigningKey],
    text: str,
    *,
    conv: str = "client-martin",
    peer: str = "M. Martin",
    at: int = T0,
    owner: str = "maitre.durand",
) -> int:
    """Store one message; return its records.id."""
    record = message(phone[1], text, conv=conv, at=at, peer=peer)
    store(box, phone[1], phone[0], owner, record)
    return int(box.reader_scalar("SELECT id FROM records WHERE record_id = ?", record.record_id))


def attach(
    box: Box,
    phone: tuple[int, SigningKey],
    data: bytes,
    name: str,
    *,
    conv: str = "client-martin",
    peer: str = "M. Martin",
    at: int = T0,
    owner: str = "maitre.durand",
    ref: str = "m-attach",
) -> int:
    """Upload a blob and store its attachment record; return the record's records.id."""
    sha = hashlib.sha256(data).digest()
    location = box.archive.blobs.new_location()
    upload = box.archive.blobs.start_upload(location, len(data), sha)
    upload.write(data)
    upload.finish()
    box.archive.blobs.complete(upload, location)
    box.archive.write(writes.register_blob(sha, len(data), location))
    fields = {
        "v": 1,
        "kind": "attachment",
        "id": f"a-{os.urandom(4).hex()}",
        "conv": conv,
        "peer": peer,
        "dir": "out",
        "from": "Maître Durand",
        "at": at,
        "ref": ref,
        "blob": {"sha256": sha, "size": len(data), "name": name, "mime": "application/pdf"},
    }
    raw, sig = sign_record(phone[1], fields)
    record = parse_record(raw, sig, max_blob_size=1 << 30)
    store(box, phone[1], phone[0], owner, record)
    return int(box.reader_scalar("SELECT id FROM records WHERE record_id = ?", record.record_id))


def conversation_id(box: Box, ref: str = "client-martin") -> int:
    return int(box.reader_scalar("SELECT id FROM conversations WHERE ref = ?", ref))


__all__ = [
    "DAY_MS",
    "T0",
    "YEAR_MS",
    "Box",
    "attach",
    "conversation_id",
    "new_box",
    "new_phone",
    "open_box",
    "say",
]
