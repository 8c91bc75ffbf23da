"""The full-text index is merged while the box is idle, and no ack waits for it.

Each group commit leaves one FTS5 segment and FTS5 merges 16 at a time on the ack
path (schema 12), so a search reads many segments until the group committer, with
its queue empty, merges them in bounded steps (archive/fts_merge.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from archive_helpers import assert_index_matches_text, message, new_phone
from strongroom.archive import committer as committer_module
from strongroom.archive import fts_merge, writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive, Txn

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


async def test_a_push_during_the_idle_merge_waits_for_one_step_not_the_whole_merge(
    archive: Archive, quick_idle: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _many_small_commits(archive)
    events: list[str] = []
    running = threading.Event()
    release = threading.Event()
    original = fts_merge.merge_step

    def small_step(conn: Connection, pages: int = fts_merge.STEP_PAGES) -> bool:
        # One page per step, so the merge takes many; the second one holds the
        # writer until the push below is queued.
        if len([e for e in events if e == "step"]) == 1:
            running.set()
            release.wait(10)
        merged = original(conn, 1)
        events.append("step")
        return merged

    monkeypatch.setattr(fts_merge, "merge_step", small_step)
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
        await asyncio.sleep(0.2)
        assert not pushed.done()  # the step under way holds the writer
        release.set()
        await pushed
        # Acked right after that one step, with the rest of the merge still to come.
        assert events == ["step", "step", "push"], events
        await asyncio.to_thread(_wait, lambda: not archive.fts_merge_due)
        assert events.count("step") > 3  # the merge went on once the queue was empty
    finally:
        release.set()
        await asyncio.to_thread(committer.stop)
    assert_index_matches_text(archive.conn)


def test_the_architecture_doc_states_the_idle_merge_as_it_runs() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    note = " ".join(doc.split("- **FTS5 merges 16 segments at a time**")[1].split()[:400])
    assert f"empty for {committer_module.IDLE_BEFORE_FTS_MERGE_S} s" in note
    assert f"{fts_merge.STEP_PAGES} pages of output a step" in note
    assert "`usermerge` 8" in note
