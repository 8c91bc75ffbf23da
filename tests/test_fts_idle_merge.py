"""The full-text index is merged while the box is idle, and no ack waits for it.

Each group commit leaves one FTS5 segment and FTS5 merges 16 at a time on the ack
path (schema 12), so a search reads many segments until the group committer, with
its queue empty, merges them in bounded steps (archive/fts_merge.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import assert_index_matches_text, message, new_phone
from strongroom.archive import committer as committer_module
from strongroom.archive import fts_merge, writes
from strongroom.archive.checkpointer import WalIndex
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive, Txn
from strongroom.archive.verify import verify_archive

T0 = 1_700_000_000_000
OWNER = "maitre.durand"
BATCHES = 60


def _many_small_commits(archive: Archive) -> int:
    """BATCHES commits of 4 messages, each with words of its own; returns the count."""
    device, key = new_phone(archive)
    n = 0
    for _ in range(BATCHES):
        ops = []
        for _ in range(4):
            # Words of its own: each commit's segment spans a few index pages.
            own = " ".join(f"mot{n}t{i}" for i in range(150))
            text = f"audience du tribunal, dossier dossier{n}x {own}"
            ops.append(writes.store_record(message(key, text, at=T0 + n), device, OWNER))
            n += 1
        archive.write_batch(ops)
    return n


def _wait(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(committer_module, "IDLE_BEFORE_FTS_MERGE_S", 0.01)


async def test_an_idle_box_merges_the_index_and_every_message_is_still_found(
    archive: Archive, quick_idle: None
) -> None:
    messages = _many_small_commits(archive)
    before = fts_merge.segment_count(archive.conn)
    assert before >= 20  # 16 at a time on the ack path: most segments wait
    committer = GroupCommitter(archive)
    committer.start()
    try:
        await asyncio.to_thread(_wait, lambda: not archive.fts_merge_due)
    finally:
        await asyncio.to_thread(committer.stop)
    after = fts_merge.segment_count(archive.conn)
    # usermerge 8: no level keeps 8 segments once idle.
    assert after * 4 <= before, (before, after)
    assert_index_matches_text(archive.conn)
    with closing(archive.reader()) as reader:
        for n in (0, 1, messages // 2, messages - 1):
            hits = search_messages(reader, f"dossier{n}x", SearchFilters(), limit=5)
            assert len(hits) == 1, n
        common = reader.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'tribunal'"
        ).fetchone()[0]
        assert common == messages
    # Nothing more to merge until a batch writes a segment: one step finds no work.
    assert not fts_merge.merge_step(archive.conn)


async def test_a_push_during_the_idle_merge_interrupts_the_step_and_waits_for_none(
    archive: Archive, quick_idle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_small_commits(archive)
    events: list[str] = []
    running = threading.Event()
    queued = threading.Event()
    original = fts_merge.merge_step
    # The step looks at the queue after every virtual machine step: the one below
    # surely looks while its merge statement runs.
    monkeypatch.setattr(fts_merge, "YIELD_EVERY_OPS", 1)

    def step(
        conn: Connection,
        pages: int = fts_merge.STEP_PAGES,
        yield_to: Callable[[], bool] | None = None,
        width: int | None = None,
    ) -> bool:
        assert yield_to is not None  # the committer's idle merge always gives way
        second = events.count("step") == 1

        def held() -> bool:
            # In the second step's merge statement: hold it until the push is queued.
            if second and not running.is_set():
                running.set()
                queued.wait(10)
            return yield_to()

        try:
            merged = original(conn, 1, yield_to=held, width=width)
        except fts_merge.Yielded:
            events.append("yielded")
            raise
        events.append("step")
        return merged

    monkeypatch.setattr(fts_merge, "merge_step", step)
    device, key = new_phone(archive)
    store = writes.store_record(message(key, "nouvelle audience", at=T0 - 1), device, OWNER)

    def push(txn: Txn) -> object:
        events.append("push")
        return store(txn)

    committer = GroupCommitter(archive)
    committer.start()
    try:
        assert await asyncio.to_thread(running.wait, 10)
        pushed = asyncio.create_task(committer.submit(push))
        await asyncio.sleep(0)  # queued (submit puts it in line at once)
        queued.set()
        await asyncio.wait_for(pushed, 10)
        # The step under way gave way (rolled back) and the push went first.
        assert events == ["step", "yielded", "push"], events
        assert archive.fts_merge_due  # the merge is still to come
        await asyncio.to_thread(_wait, lambda: not archive.fts_merge_due)
        assert "step" in events[events.index("push") :]  # it went on once the queue was empty
    finally:
        queued.set()
        await asyncio.to_thread(committer.stop)
    # Durable commits again once the step is gone: the step's NORMAL was put back.
    assert archive.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert_index_matches_text(archive.conn)
    with closing(archive.reader()) as reader:
        hits = search_messages(reader, "nouvelle", SearchFilters(), limit=5)
    assert len(hits) == 1


def _structure(conn: Connection) -> bytes:
    return bytes(conn.execute("SELECT block FROM messages_fts_data WHERE id = 10").fetchone()[0])


def _merge_calls(conn: Connection) -> list[str]:
    """The 'merge' calls the connection runs from now on (its statements' trace)."""
    calls: list[str] = []
    conn.set_trace_callback(lambda sql: calls.append(sql) if "'merge'" in sql else None)
    return calls


def test_a_step_runs_several_merge_calls_in_one_transaction_kept_when_a_push_comes_between(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step is up to STEP_CALLS 'merge' calls in one transaction (their freed pages
    reach the WAL once). A push queued between two calls ends the step: what the calls
    before merged is committed, not thrown away, and the merge goes on afterwards."""
    _many_small_commits(archive)
    conn = archive.conn
    before = _structure(conn)
    # Only the look between calls may see the push (none inside a call here).
    monkeypatch.setattr(fts_merge, "YIELD_EVERY_OPS", 10**9)
    calls = _merge_calls(conn)
    try:
        assert fts_merge.merge_step(conn, 1, yield_to=lambda: len(calls) >= 2)
        assert len(calls) == 2  # the push was seen after the second call
        assert not conn.in_transaction
        after = _structure(conn)
        assert after != before  # the two calls' work is committed
        calls.clear()
        assert fts_merge.merge_step(conn, 1)  # no push: a whole step
        assert len(calls) == fts_merge.STEP_CALLS > 2
    finally:
        conn.set_trace_callback(None)
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    assert_index_matches_text(conn)


def test_a_push_during_a_later_call_rolls_the_whole_step_back(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push queued while the step's third call runs interrupts it: the calls before
    it shared its transaction and are rolled back with it (SQLite rolls back the whole
    transaction of an interrupted write): the index is exactly as before the step."""
    _many_small_commits(archive)
    conn = archive.conn
    before = _structure(conn)
    monkeypatch.setattr(fts_merge, "YIELD_EVERY_OPS", 1)
    calls = _merge_calls(conn)
    try:
        with pytest.raises(fts_merge.Yielded):
            fts_merge.merge_step(conn, 1, yield_to=lambda: len(calls) >= 3)
    finally:
        conn.set_trace_callback(None)
    assert len(calls) == 3
    assert not conn.in_transaction
    assert _structure(conn) == before
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    assert_index_matches_text(conn)


def _files(archive: Archive) -> list[tuple[int, int]]:
    found = []
    for suffix in ("", "-wal"):
        path = archive.path.with_name(archive.path.name + suffix)
        stat = path.stat() if path.exists() else None
        found.append((stat.st_size, stat.st_mtime_ns) if stat else (0, 0))
    return found


async def test_a_quiet_box_with_nothing_to_merge_runs_no_step_and_writes_nothing(
    archive: Archive, quick_idle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three batches leave three segments (fewer than usermerge's 8 on any level): no
    merge step is due, before or after a push, and the quiet box writes nothing."""
    device, key = new_phone(archive)
    for n in range(3):
        archive.write_batch(
            [writes.store_record(message(key, f"audience {n}", at=T0 + n), device, OWNER)]
        )
    steps: list[int] = []
    original = fts_merge.merge_step

    def counted(conn: Connection, *args: Any, **kwargs: Any) -> bool:
        steps.append(1)
        return bool(original(conn, *args, **kwargs))

    monkeypatch.setattr(fts_merge, "merge_step", counted)
    wal = WalIndex(archive.path)
    committer = GroupCommitter(archive)
    committer.start()
    try:
        store = writes.store_record(message(key, "audience 3", at=T0 + 3), device, OWNER)
        await committer.submit(store)
        frames, files = wal.state(), _files(archive)
        await asyncio.sleep(0.5)  # fifty times the idle time before a merge step
        assert (wal.state(), _files(archive)) == (frames, files)
    finally:
        await asyncio.to_thread(committer.stop)
        wal.close()
    assert fts_merge.segment_count(archive.conn) == 4
    assert not archive.fts_merge_due
    assert steps == []


def test_a_merge_is_due_exactly_when_fts5_would_merge_something(archive: Archive) -> None:
    """The structure record's reading (merge_pending) against FTS5's own answer: a
    step merges something exactly when it says so, batch after batch, through levels
    filling up, merges under way (one page a step) and merges finished."""
    device, key = new_phone(archive)
    conn = archive.conn
    width = fts_merge.usermerge(conn)
    assert width == 8
    seen = set()
    for n in range(80):
        own = " ".join(f"mot{n}t{i}" for i in range(60))
        archive.write_batch(
            [writes.store_record(message(key, f"audience {own}", at=T0 + n), device, OWNER)]
        )
        while True:
            pending = fts_merge.merge_pending(conn, width)
            merged = fts_merge.merge_step(conn, 1)
            assert merged == pending, n
            seen.add(pending)
            if not merged or n % 3:  # leave some merges under way for the next batch
                break
    assert seen == {True, False}
    assert_index_matches_text(conn)


def test_the_structure_record_is_read_in_both_versions() -> None:
    # Version 1: cookie, 1 level, 3 segments, write counter 3; level 0: none merging,
    # 3 segments (id, first page, last page each).
    v1 = bytes.fromhex("000000050103030003010101020101030101")
    assert fts_merge.structure_levels(v1) == [(0, 3)]
    # Version 2 (as a contentless_delete table writes it, SQLite 3.53): a marker after
    # the cookie, eight varints a segment (origins, tombstones, entries).
    v2 = bytes.fromhex("00000000ff00000101010100010101010101000003")
    assert fts_merge.structure_levels(v2) == [(0, 1)]
    # Not a whole record: None (the merge then runs a step to find out).
    assert fts_merge.structure_levels(v1[:-1]) is None
    assert fts_merge.structure_levels(v1 + b"\x00") is None


def test_the_architecture_doc_states_the_idle_merge_as_it_runs() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    note = " ".join(doc.split("- **FTS5 merges 16 segments at a time**")[1].split()[:480])
    assert f"empty for {committer_module.IDLE_BEFORE_FTS_MERGE_S} s" in note
    step = f"{fts_merge.STEP_PAGES} pages of output a call, {fts_merge.STEP_CALLS} calls a step"
    assert step in note
    assert "`usermerge` 8" in note


def test_a_batch_never_depends_on_reading_the_merge_state(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a merge is due is read once idle, never inside a batch's transaction
    (review L1: a read error caught there, after SQLite rolled the transaction back,
    would have committed a signed head and log nodes without their leaf). With that
    read failing, batches still commit whole and the archive verifies."""

    def unreadable(conn: Connection, width: int) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(fts_merge, "merge_pending", unreadable)
    device, key = new_phone(archive)
    for n in range(12):
        batch = archive.write_batch(
            [writes.store_record(message(key, f"audience {n}", at=T0 + n), device, OWNER)]
        )
        assert batch.tree_head is not None
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.ok, report
