"""Shared helpers for the records-office tests (this module holds no tests).

A box here is built from real 24-word entropy, so backups and restores derive
the same keys a real box would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from archive_helpers import new_phone
from strongroom.archive import writes
from support.box import DAY_MS, T0, YEAR_MS, new_box, open_box, upload_blob
from support.box import ArchiveBox as Box
from support.records import attachment_fields, signed, signed_message


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
    record = signed_message(phone[1], text, conv=conv, at=at, peer=peer)
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
    sha, _ = upload_blob(box.archive, data)
    fields = attachment_fields(ref, sha, len(data), name=name, conv=conv, peer=peer, at=at)
    record = signed(phone[1], fields)
    store(box, phone[1], phone[0], owner, record)
    return int(box.reader_scalar("SELECT id FROM records WHERE record_id = ?", record.record_id))


def box_with_two_messages(tmp_path: Path) -> Iterator[Box]:
    """For a fixture (`box = pytest.fixture(box_with_two_messages)` in the test module):
    a box holding one phone's two messages in "client-martin" (a confirmation, then a
    withdrawal a second later): what the verify-export tamper tests export and forge."""
    box = new_box(tmp_path)
    phone = new_phone(box.archive)
    say(box, phone, "Je confirme le rendez-vous de mardi.", at=T0)
    say(box, phone, "Je retire ma plainte.", at=T0 + 1000)
    yield box
    box.close()


def conversation_id(box: Box, ref: str = "client-martin") -> int:
    return int(box.reader_scalar("SELECT id FROM conversations WHERE ref = ?", ref))


__all__ = [
    "DAY_MS",
    "T0",
    "YEAR_MS",
    "Box",
    "attach",
    "box_with_two_messages",
    "conversation_id",
    "new_box",
    "new_phone",
    "open_box",
    "say",
]
