"""The one record builder: the fields of a message or an attachment as a phone writes
them, and the signed, parsed Record the archive stores.

Every message gets a fresh id (a counter and random bytes) and, unless told,
a distinct `at` after BASE_AT_MS, so records never collide by accident.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from nacl.signing import SigningKey

from strongroom.archive.record import Record, parse_record, sign_record

BASE_AT_MS = 1_700_000_000_000  # November 2023
MAX_BLOB = 1 << 30
_counter = itertools.count()


def message_fields(
    text: str,
    *,
    conv: str = "client-martin",
    direction: str = "out",
    sender: str | None = None,
    at: int | None = None,
    n: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An unsigned message record. `sender` defaults to the lawyer (out) or the client (in);
    `n` (default: a process-wide counter) numbers the id and sets `at` when it is not given."""
    n = next(_counter) if n is None else n
    fields: dict[str, Any] = {
        "v": 1,
        "kind": "message",
        "id": f"m-{n}-{os.urandom(4).hex()}",
        "conv": conv,
        "dir": direction,
        "from": sender if sender is not None else _default_sender(direction),
        "at": at if at is not None else BASE_AT_MS + n,
        "text": text,
    }
    fields.update(extra)
    return fields


def attachment_fields(
    ref: str,
    sha256: bytes,
    size: int,
    *,
    name: str = "scan.pdf",
    mime: str = "application/pdf",
    **message: Any,
) -> dict[str, Any]:
    """An unsigned attachment record for the message whose id is `ref`."""
    fields = message_fields("", **message)
    del fields["text"]
    fields.update(
        kind="attachment",
        ref=ref,
        blob={"sha256": sha256, "size": size, "name": name, "mime": mime},
    )
    return fields


def signed(key: SigningKey, fields: dict[str, Any]) -> Record:
    """The record as the box receives it: signed by the phone's key, parsed and checked."""
    raw, sig = sign_record(key, fields)
    return parse_record(raw, sig, max_blob_size=MAX_BLOB)


def signed_message(key: SigningKey, text: str, **options: Any) -> Record:
    """A message signed by `key` (options as for message_fields)."""
    return signed(key, message_fields(text, **options))


def _default_sender(direction: str) -> str:
    return "Maître Durand" if direction == "out" else "M. Martin"
