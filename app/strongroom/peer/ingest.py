"""Archive write operations behind the `push` and blob frames.

Each wraps an op of `strongroom.archive.writes` and adds what an ack needs
to let the phone recompute its log leaf: the leaf's timestamp (`at`). The
leaf is `leaf_data(kind, content hash, at)`; the phone knows the kind and
the hash, the box tells it the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongroom.archive import writes
from strongroom.archive.batch_ops import RecordWrite
from strongroom.archive.blobs import BlobLocation
from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import Record
from strongroom.archive.store import Txn, WriteOpOf


@dataclass(frozen=True)
class Logged:
    """Something now in the log: what it commits to, where, and when."""

    content_sha256: bytes
    kind: str
    log_index: int
    at: int
    duplicate: bool


def _leaf_at(txn: Txn, index: int) -> int:
    if index >= txn.first_index:
        # A duplicate of a record this batch stored: its leaf is this batch's (whose
        # row may still wait to be inserted: archive/batch_rows.py), at its time.
        return txn.at_ms
    row = txn.conn.execute("SELECT at FROM log_leaves WHERE idx = ?", (index,)).fetchone()
    if row is None:  # the archive's own invariant: every log_index has its leaf
        raise RecordRejected(f"log leaf {index} is missing")
    return int(row[0])


def push_record(record: Record, device_id: int, owner: str) -> WriteOpOf[Logged]:
    """Store a verified record (idempotent on its id); the result is a Logged."""
    store = writes.store_record(record, device_id, owner)

    def op(txn: Txn) -> Logged:
        stored: writes.StoredRecord = store(txn)
        # A new record's leaf was written by this transaction, at its time.
        at = _leaf_at(txn, stored.log_index) if stored.duplicate else txn.at_ms
        return Logged(stored.record_id, record.kind, stored.log_index, at, stored.duplicate)

    # Still a record's op: a batch of them shares one savepoint and its look-ups.
    return RecordWrite(op, device_id, record.sent_at, record.record_id)


def register_blob(sha256: bytes, size: int, location: BlobLocation) -> WriteOpOf[Logged]:
    """A verified, complete blob: register it (idempotent on its hash); result is a Logged."""
    register = writes.register_blob(sha256, size, location)

    def op(txn: Txn) -> Logged:
        known = txn.conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        index = int(register(txn))
        return Logged(sha256, "blob", index, _leaf_at(txn, index), known is not None)

    return op


def existing_blob(sha256: bytes) -> WriteOpOf[Logged]:
    """The log entry of a blob the box already holds (for an ack without re-upload)."""

    def op(txn: Txn) -> Logged:
        row = txn.conn.execute("SELECT log_index FROM blobs WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise RecordRejected("no such blob")
        index = int(row[0])
        return Logged(sha256, "blob", index, _leaf_at(txn, index), True)

    return op


def log_index_of(result: Any) -> int | None:
    """For GroupCommitter.submit: which log entry the ack's inclusion proof is for."""
    return result.log_index if isinstance(result, Logged) else None


def touch(device_id: int) -> WriteOpOf[None]:
    """Note that a device was seen now (not logged: it is bookkeeping, not a record)."""

    def op(txn: Txn) -> None:
        txn.conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (txn.at_ms, device_id))

    return op
