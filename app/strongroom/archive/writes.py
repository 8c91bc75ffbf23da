"""Write operations for `Archive.write_batch`: each is a callable on a Txn.

They validate against the archive's current state (duplicates, revoked
devices, unknown blobs) and raise an ArchiveError subclass to reject, which
rolls back that operation alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import cbor2

from strongroom.archive.batch_ops import RecordWrite, device_is_live, note_stored, stored_log_index
from strongroom.archive.blobs import BlobLocation
from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import Record, text_span
from strongroom.archive.store import Txn, WriteOpOf


@dataclass(frozen=True)
class StoredRecord:
    """What the box tells a phone about a record it holds."""

    record_id: bytes
    log_index: int
    duplicate: bool


def _conversation_id(txn: Txn, owner: str, ref: str, peer: str, at: int) -> int:
    # One statement, not a SELECT then an UPDATE or INSERT: the committer hands
    # the GIL over around each statement, so every statement saved counts.
    row = txn.conn.execute(
        "INSERT INTO conversations (owner, ref, peer, created_at, last_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (owner, ref) DO UPDATE SET last_at = max(last_at, excluded.last_at),"
        " peer = CASE WHEN peer = '' THEN excluded.peer ELSE peer END"
        " RETURNING id",
        (owner, ref, peer, at, at),
    ).fetchone()
    return int(row[0])


# messages.has_attachment is left at its default, 0 (schema 1's column, never
# maintained: an attachment pushed after its message never set it): nothing reads it;
# schema.MESSAGE_HAS_ATTACHMENT is the truth.
_INSERT_MESSAGE = (
    "INSERT INTO messages (record_id, conversation_id, direction, sender, text, text_at,"
    " text_len, sent_at, edits_client_id, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Before migration 8 (a test building an old archive): the text in messages.text.
_INSERT_MESSAGE_V7 = (
    "INSERT INTO messages (record_id, conversation_id, direction, sender, text,"
    " sent_at, edits_client_id, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


# The kinds with a messages row; in a batch of records, batch_rows inserts their rows.
_DEFERRED_KINDS = frozenset(("message", "edit", "deletion"))
_INSERT_RECORD = (
    "INSERT INTO records (record_id, device_id, conversation_id, kind, client_id, sent_at,"
    " received_at, body, signature, content_sha256, log_index)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def message_text(record: Record, text_once: bool) -> tuple[str | None, int | None, int | None]:
    """messages (text, text_at, text_len) for a record: the text once, in its body.

    Schema 8: the text is read back from records.body (schema.MESSAGE_TEXT), so the
    row keeps only where it lies. Before it, or should the span not be found, the
    row keeps the text itself (MESSAGE_TEXT reads that first).
    """
    span = text_span(record) if text_once else None
    if span is None:
        return record.text, None, None
    return None, span[0], span[1]


def record_row(
    record: Record, device_id: int, conv: object, at_ms: int, log_index: int
) -> tuple[object, ...]:
    """A `records` row's values in _INSERT_RECORD's order (the bench's corpus builder
    writes the same rows, so that its archives are the box's)."""
    return (
        record.record_id,
        device_id,
        conv,
        record.kind,
        record.client_id,
        record.sent_at,
        at_ms,
        record.raw,
        record.signature,
        record.record_id,
        log_index,
    )


def store_record(record: Record, device_id: int, owner: str) -> WriteOpOf[StoredRecord]:
    """Store one validated, signature-checked record; idempotent on record_id."""

    def op(txn: Txn) -> StoredRecord:
        record_id = record.record_id
        # records_dedup (device_id, sent_at, record_id): a phone's records come in
        # time order, so this index grows at the end of each phone's slice.
        existing = stored_log_index(txn, device_id, record.sent_at, record_id)
        if existing is not None:
            return StoredRecord(record_id, existing, duplicate=True)
        if not device_is_live(txn, device_id):
            raise RecordRejected("device is unknown or revoked")
        # In a batch of records, a message's rows wait to go in with the others'
        # (batch_rows); any other record first lets them in, then writes its own.
        rows = txn.rows
        wait = rows is not None and txn.text_once and record.kind in _DEFERRED_KINDS
        conv: object
        if rows is not None and wait:
            conv = rows.conversation(owner, record.conversation, record.peer, record.sent_at)
        else:
            if rows is not None:
                rows.flush(txn.conn)  # what waits goes in first: ids and upserts in order
            conv = _conversation_id(txn, owner, record.conversation, record.peer, record.sent_at)
        log_index = txn.append_leaf(record.kind, record_id)
        row = record_row(record, device_id, conv, txn.at_ms, log_index)
        if rows is not None and wait:
            row_id = rows.take_record_id()
            rows.records.append((row_id, *row))
        else:
            if rows is not None:
                rows.flush(txn.conn)  # this record's own leaf
            row_id = int(txn.conn.execute(_INSERT_RECORD, row).lastrowid or 0)
            if rows is not None:
                rows.next_id = row_id + 1
        note_stored(txn, (device_id, record.sent_at, record_id), log_index)
        if record.kind in _DEFERRED_KINDS:
            text, at, length = message_text(record, txn.text_once)
            columns: tuple[object, ...] = (row_id, conv, record.direction, record.sender, text)
            if txn.text_once:
                columns += (at, length)
            message_row = (
                *columns,
                record.sent_at,
                record.ref,
                1 if record.kind == "deletion" else 0,
            )
            if rows is not None and wait:
                rows.messages.append(message_row)
            else:
                txn.conn.execute(
                    _INSERT_MESSAGE if txn.text_once else _INSERT_MESSAGE_V7, message_row
                )
        elif record.kind == "receipt":
            txn.conn.execute(
                "INSERT INTO receipts (record_id, conversation_id, target_client_id, receipt, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (row_id, conv, record.ref, record.receipt, record.sent_at),
            )
        elif record.kind == "attachment" and record.blob is not None:
            blob = record.blob
            txn.conn.execute(
                "INSERT INTO attachments (record_id, conversation_id, message_client_id,"
                " blob_sha256, size, name, mime) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row_id, conv, record.ref, blob.sha256, blob.size, blob.name, blob.mime),
            )
            # Its message, if already archived, is not looked up (it has no index by
            # the phone's id): readers ask attachments instead (schema.MESSAGE_HAS_ATTACHMENT).
        return StoredRecord(record_id, log_index, duplicate=False)

    # Its look-ups can be asked for a whole batch at once (batch_ops).
    return RecordWrite(op, device_id, record.sent_at, record.record_id)


def canonical_event(fields: dict[str, Any]) -> bytes:
    return cbor2.dumps(fields, canonical=True)


def audit(
    actor: str, action: str, target: str = "", details: dict[str, Any] | None = None
) -> WriteOpOf[int]:
    """An audit event, itself a log leaf so the trail is tamper-evident."""
    details_json = json.dumps(details or {}, sort_keys=True, ensure_ascii=False)

    def op(txn: Txn) -> int:
        content = canonical_event(
            {
                "actor": actor,
                "action": action,
                "target": target,
                "details": details_json,
                "at": txn.at_ms,
            }
        )
        index = txn.append_leaf("audit", hashlib.sha256(content).digest())
        txn.conn.execute(
            "INSERT INTO audit_events (at, actor, action, target, details, log_index)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (txn.at_ms, actor, action, target, details_json, index),
        )
        return index

    return op


def audit_content(at: int, actor: str, action: str, target: str, details: str) -> bytes:
    """The bytes an audit leaf commits to (used by verify to recompute it)."""
    return canonical_event(
        {"actor": actor, "action": action, "target": target, "details": details, "at": at}
    )


@dataclass(frozen=True)
class NewDevice:
    sign_key: bytes
    noise_key: bytes
    name: str
    owner: str
    role: str
    method: str


def device_event_content(fields: dict[str, Any]) -> bytes:
    return canonical_event(fields)


def add_device(device: NewDevice) -> WriteOpOf[int]:
    """Register a paired device and log the pairing."""

    def op(txn: Txn) -> int:
        existing = txn.conn.execute(
            "SELECT id, revoked_at FROM devices WHERE sign_key = ? OR noise_key = ?",
            (device.sign_key, device.noise_key),
        ).fetchone()
        if existing is not None:
            if existing[1] is not None:
                raise RecordRejected("this device key was revoked; a new key must be paired")
            return int(existing[0])
        cur = txn.conn.execute(
            "INSERT INTO devices (sign_key, noise_key, name, owner, role, paired_at,"
            " pairing_method) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                device.sign_key,
                device.noise_key,
                device.name,
                device.owner,
                device.role,
                txn.at_ms,
                device.method,
            ),
        )
        content = device_event_content(
            {
                "event": "paired",
                "sign_key": device.sign_key,
                "noise_key": device.noise_key,
                "owner": device.owner,
                "name": device.name,
                "method": device.method,
                "at": txn.at_ms,
            }
        )
        txn.append_leaf("device", hashlib.sha256(content).digest())
        return int(cur.lastrowid or 0)

    return op


def revoke_device(device_id: int, reason: str) -> WriteOpOf[bool]:
    def op(txn: Txn) -> bool:
        row = txn.conn.execute(
            "SELECT sign_key, revoked_at FROM devices WHERE id = ?", (device_id,)
        ).fetchone()
        if row is None:
            raise RecordRejected(f"no device {device_id}")
        if row[1] is not None:
            return False
        txn.conn.execute(
            "UPDATE devices SET revoked_at = ?, revoked_reason = ? WHERE id = ?",
            (txn.at_ms, reason, device_id),
        )
        content = device_event_content(
            {"event": "revoked", "sign_key": bytes(row[0]), "reason": reason, "at": txn.at_ms}
        )
        txn.append_leaf("device", hashlib.sha256(content).digest())
        return True

    return op


def begin_upload(sha256: bytes, size: int, location: BlobLocation) -> WriteOpOf[BlobLocation]:
    """Remember an upload in progress so it can resume after a reconnect or restart."""

    def op(txn: Txn) -> BlobLocation:
        row = txn.conn.execute(
            "SELECT file_name, key_salt, size FROM uploads WHERE sha256 = ?", (sha256,)
        ).fetchone()
        if row is not None:
            if int(row[2]) != size:
                raise RecordRejected("an upload of this blob with another size is in progress")
            return BlobLocation(str(row[0]), bytes(row[1]))
        txn.conn.execute(
            "INSERT INTO uploads (sha256, size, file_name, key_salt, started_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (sha256, size, location.file_name, location.salt, txn.at_ms),
        )
        return location

    return op


def register_blob(sha256: bytes, size: int, location: BlobLocation) -> WriteOpOf[int]:
    """A verified blob is in place: record it and log its hash."""

    def op(txn: Txn) -> int:
        row = txn.conn.execute("SELECT log_index FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        txn.conn.execute("DELETE FROM uploads WHERE sha256 = ?", (sha256,))
        if row is not None:
            return int(row[0])
        index = txn.append_leaf("blob", sha256)
        txn.conn.execute(
            "INSERT INTO blobs (sha256, size, file_name, key_salt, created_at, log_index)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (sha256, size, location.file_name, location.salt, txn.at_ms, index),
        )
        return index

    return op
