"""A group commit of records runs in one savepoint with its look-ups asked once
(archive/batch_ops.py), and a rejected record still fails alone.

Real SQLCipher archive, the box's own write path (writes.store_record through
Archive.write_batch and the GroupCommitter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import closing

import pytest

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.batch_rows import MAX_ROWS
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import Record
from strongroom.archive.store import Archive, WriteOp
from strongroom.archive.verify import verify_archive
from strongroom.archive.writes import StoredRecord
from strongroom.peer import ingest

OWNER = "maitre.durand"


def _count(archive: Archive, table: str) -> int:
    with closing(archive.reader()) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_a_revoked_phones_record_is_rejected_alone_and_its_neighbours_are_kept(
    archive: Archive,
) -> None:
    good, good_key = new_phone(archive, OWNER)
    gone, gone_key = new_phone(archive, OWNER, name="Stolen")
    archive.write(writes.revoke_device(gone, "lost"))
    leaves = archive.log.size
    records = [message(good_key, f"avant {n}") for n in range(5)]
    hostile = message(gone_key, "écrit depuis un téléphone révoqué")
    after = [message(good_key, f"après {n}") for n in range(5)]
    ops = [writes.store_record(r, good, OWNER) for r in records]
    ops.append(writes.store_record(hostile, gone, OWNER))
    ops += [writes.store_record(r, good, OWNER) for r in after]

    batch = archive.write_batch(ops)

    rejected = batch.results[5]
    assert isinstance(rejected, RecordRejected)
    assert "revoked" in str(rejected)
    stored = batch.results[:5] + batch.results[6:]
    assert all(isinstance(r, StoredRecord) and not r.duplicate for r in stored)
    # Ten records, ten leaves, numbered without a gap where the hostile one was.
    assert [r.log_index for r in stored] == list(range(leaves, leaves + 10))
    assert _count(archive, "records") == 10
    assert _count(archive, "messages") == 10
    assert batch.tree_head is not None and batch.tree_head.tree_size == leaves + 10
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.ok, report


async def test_through_the_committer_only_the_hostile_pusher_hears_no(archive: Archive) -> None:
    good, good_key = new_phone(archive, OWNER)
    gone, gone_key = new_phone(archive, OWNER, name="Stolen")
    archive.write(writes.revoke_device(gone, "lost"))
    committer = GroupCommitter(archive)
    committer.start()
    try:
        pushes = [writes.store_record(message(good_key, f"m {n}"), good, OWNER) for n in range(40)]
        pushes.insert(17, writes.store_record(message(gone_key, "révoqué"), gone, OWNER))
        outcomes = await asyncio.gather(
            *(committer.submit(op) for op in pushes), return_exceptions=True
        )
    finally:
        await asyncio.to_thread(committer.stop)
    assert isinstance(outcomes[17], RecordRejected)
    assert all(not isinstance(o, BaseException) for n, o in enumerate(outcomes) if n != 17)
    assert _count(archive, "records") == 40


def test_duplicates_in_the_archive_and_in_the_same_batch_answer_the_first_index(
    archive: Archive,
) -> None:
    phone, key = new_phone(archive, OWNER)
    old = message(key, "déjà là")
    first = archive.write(writes.store_record(old, phone, OWNER))
    fresh = message(key, "nouveau")
    batch = archive.write_batch(
        [
            writes.store_record(old, phone, OWNER),
            writes.store_record(fresh, phone, OWNER),
            writes.store_record(fresh, phone, OWNER),
        ]
    )
    again, new, twice = batch.results
    assert again == StoredRecord(old.record_id, first.log_index, duplicate=True)
    assert new.duplicate is False
    assert twice == StoredRecord(fresh.record_id, new.log_index, duplicate=True)
    assert _count(archive, "records") == 2
    assert archive.log.size == new.log_index + 1


@pytest.mark.parametrize("make_op", [writes.store_record, ingest.push_record])
def test_a_batch_of_records_asks_its_look_ups_once_not_per_record(
    archive: Archive, make_op: Callable[[Record, int, str], WriteOp]
) -> None:
    """Both the archive's op and the one a phone's push runs (peer/ingest.py)."""
    phone, key = new_phone(archive, OWNER)
    records = [message(key, f"message {n}") for n in range(200)]
    statements: list[str] = []
    archive.conn.set_trace_callback(statements.append)
    try:
        archive.write_batch([make_op(r, phone, OWNER) for r in records])
    finally:
        archive.conn.set_trace_callback(None)
    per_record = [s for s in statements if "FROM devices" in s or "SAVEPOINT" in s]
    # Was: a savepoint, its release, a duplicate and a device look-up for each record.
    assert len(per_record) <= 4, per_record[:8]
    dedup = [s for s in statements if s.lstrip().startswith("SELECT") and "FROM records WHERE" in s]
    assert len(dedup) == 1
    # Was: one INSERT per record into each of records, messages and log_leaves; now
    # a few multi-row ones (archive/batch_rows.py). The trace names a statement again
    # for each trigger it fires (schema 10's conversation key): the same text.
    for table in ("conversations", "records", "messages", "log_leaves"):
        inserts = set(s for s in statements if s.startswith(f"INSERT INTO {table} "))
        assert 1 <= len(inserts) <= len(records) // MAX_ROWS + 3, (table, len(inserts))
    rows = archive.conn.execute(
        "SELECT count(*) FROM records r JOIN messages m ON m.record_id = r.id"
        " JOIN log_leaves l ON l.idx = r.log_index"
    ).fetchone()
    assert rows[0] == len(records)


def test_the_batch_look_up_walks_the_dedup_index(archive: Archive) -> None:
    plan = archive.conn.execute(
        "EXPLAIN QUERY PLAN SELECT device_id, sent_at, record_id, log_index FROM records"
        " WHERE (device_id, sent_at, record_id) IN (VALUES (?, ?, ?), (?, ?, ?))",
        (1, 2, b"a", 3, 4, b"b"),
    ).fetchall()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "records_dedup" in detail, detail
    assert "SCAN records" not in detail, detail
