"""Running a batch's write ops: one savepoint per batch, look-ups asked once.

A group commit of phones' records used to cost, per record, a savepoint and its
release, a duplicate look-up and a device look-up: four statements of the eight a
record takes, on the committer's one thread. A batch made only of records
(`RecordWrite`, what `writes.store_record` returns) now asks every duplicate and
every device in two queries, and runs all its ops inside ONE savepoint.

If any op rejects its record (an ArchiveError: a revoked device, ...), that
savepoint is rolled back and the batch runs again the old way, each op in its own
savepoint with its own look-ups, so the rejected record fails alone and its
neighbours are written exactly as before. A record op has no effect outside the
database, so running it again is safe; any other op (an audit event, a blob) is
always run the old way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom.archive.batch_rows import BatchRows, next_record_id
from strongroom.archive.errors import ArchiveError

if TYPE_CHECKING:
    from strongroom.archive.db import Connection
    from strongroom.archive.txn import Txn

DedupKey = tuple[int, int, bytes]  # records_dedup: (device_id, sent_at, record_id)
# Keys per look-up statement: 3 parameters each, well under SQLite's 32,766.
CHUNK = 2000


@dataclass(slots=True)
class RecordWrite:
    """A record's write op, and the keys its look-ups need (see the module doc).

    Built on the event loop once per push: slots, not frozen (a frozen dataclass's
    __init__ goes through object.__setattr__ for each field)."""

    op: Callable[[Txn], Any]
    device_id: int
    sent_at: int
    record_id: bytes

    def __call__(self, txn: Txn) -> Any:
        return self.op(txn)


@dataclass
class Lookups:
    """What a batch of records found before any of them ran."""

    stored: dict[DedupKey, int]  # key -> log_index, for records already in the archive
    live_devices: frozenset[int]  # the batch's devices that are paired and not revoked


def stored_log_index(txn: Txn, device_id: int, sent_at: int, record_id: bytes) -> int | None:
    """The log index of this record if the archive already holds it."""
    if txn.lookups is not None:
        return txn.lookups.stored.get((device_id, sent_at, record_id))
    row = txn.conn.execute(
        "SELECT log_index FROM records WHERE device_id = ? AND sent_at = ? AND record_id = ?",
        (device_id, sent_at, record_id),
    ).fetchone()
    return None if row is None else int(row[0])


def device_is_live(txn: Txn, device_id: int) -> bool:
    if txn.lookups is not None:
        # Exact: in a batch of records only, no op pairs or revokes a device.
        return device_id in txn.lookups.live_devices
    row = txn.conn.execute("SELECT revoked_at FROM devices WHERE id = ?", (device_id,)).fetchone()
    return row is not None and row[0] is None


def note_stored(txn: Txn, key: DedupKey, log_index: int) -> None:
    """A record this batch wrote: the same record later in the batch is a duplicate."""
    if txn.lookups is not None:
        txn.lookups.stored[key] = log_index


def run_ops(conn: Connection, txn: Txn, ops: Sequence[Callable[[Txn], Any]]) -> list[Any]:
    """Each op's result, or the ArchiveError it raised (its writes rolled back)."""
    records = [op for op in ops if isinstance(op, RecordWrite)]
    if len(ops) > 1 and len(records) == len(ops):
        txn.lookups = _look_up(conn, records)
        # Their rows wait and go in a few statements at the end (batch_rows.py).
        txn.rows = BatchRows(next_record_id(conn))
        conn.execute("SAVEPOINT batch")
        try:
            results = [op(txn) for op in records]
            txn.rows.flush(conn)
        except ArchiveError:
            # Someone's record is rejected: start again, each op alone.
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            del txn.leaves[:]
            txn.lookups = None
            txn.rows = None
        else:
            conn.execute("RELEASE batch")
            txn.lookups = None
            txn.rows = None
            return results
    return _one_by_one(conn, txn, ops)


def _one_by_one(conn: Connection, txn: Txn, ops: Sequence[Callable[[Txn], Any]]) -> list[Any]:
    results: list[Any] = []
    for op in ops:
        mark = len(txn.leaves)
        conn.execute("SAVEPOINT op")
        try:
            results.append(op(txn))
        except ArchiveError as exc:
            conn.execute("ROLLBACK TO op")
            del txn.leaves[mark:]
            results.append(exc)
        conn.execute("RELEASE op")
    return results


def _look_up(conn: Connection, records: list[RecordWrite]) -> Lookups:
    keys = sorted({(r.device_id, r.sent_at, r.record_id) for r in records})
    stored: dict[DedupKey, int] = {}
    for at in range(0, len(keys), CHUNK):
        chunk = keys[at : at + CHUNK]
        # A row-value IN list: SQLite walks records_dedup once per key (EXPLAIN QUERY
        # PLAN in tests/test_archive_batch_ops.py), one statement per CHUNK records.
        values = ", ".join(["(?, ?, ?)"] * len(chunk))
        where = f"(device_id, sent_at, record_id) IN (VALUES {values})"  # only ?s
        rows = conn.execute(
            "SELECT device_id, sent_at, record_id, log_index FROM records WHERE " + where,  # noqa: S608
            [v for key in chunk for v in key],
        )
        stored.update({(int(d), int(s), bytes(r)): int(i) for d, s, r, i in rows})
    devices = sorted({r.device_id for r in records})
    live: set[int] = set()
    for at in range(0, len(devices), CHUNK):
        chunk_ids = devices[at : at + CHUNK]
        marks = ", ".join("?" * len(chunk_ids))
        live.update(
            int(row[0])
            for row in conn.execute(
                f"SELECT id FROM devices WHERE id IN ({marks}) AND revoked_at IS NULL",  # noqa: S608
                chunk_ids,
            )
        )
    return Lookups(stored, frozenset(live))
