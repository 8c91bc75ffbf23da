"""The WAL is checkpointed on a thread of its own, never on the commit path (review M2).

With SQLite's automatic checkpoint the group commit that took the WAL past the
threshold copied it into archive.db before its acks went out: ~3 s on an SD card.
A real archive, a real group committer and the real checkpointer thread; the
threshold is made small (300 pages) so that a test crosses it in a few batches.
The WAL's state is read from SQLite's own wal-index, and checked against
`PRAGMA wal_checkpoint` below.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
from nacl.signing import SigningKey

from archive_helpers import committing, message, new_phone, open_with_keys
from strongroom.archive import checkpointer as ckpt
from strongroom.archive import db, writes
from strongroom.archive.checkpointer import bound_pages
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive
from strongroom.office.erasure import scrub_storage
from support.wait import until

THRESHOLD = 300
TEXT = "Compte rendu de la réunion, pièces du dossier à verser. " * 18  # ~1 KiB


@pytest.fixture
async def running(
    tmp_path: Path, archive_keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Archive, GroupCommitter]]:
    monkeypatch.setattr(db, "WAL_AUTOCHECKPOINT_PAGES", THRESHOLD)  # before it opens
    archive = open_with_keys(tmp_path / "data", archive_keys)
    try:
        async with committing(archive) as committer:
            yield archive, committer
    finally:
        archive.close()


async def commit_batch(committer: GroupCommitter, key: SigningKey, device: int, n: int) -> None:
    """One group commit of 20 messages (the ops are queued together, one batch)."""
    ops = [
        committer.submit(
            writes.store_record(
                message(key, f"{TEXT} n°{n}-{i}", conv=f"dossier-{i % 7}"), device, "maitre.durand"
            )
        )
        for i in range(20)
    ]
    await asyncio.gather(*ops)


def frames(archive: Archive) -> tuple[int, int]:
    state = archive.wal_index.state()
    assert state is not None, "the wal-index layout is not the one the checkpointer reads"
    return state.frames, state.backfilled


async def caught_up(archive: Archive, within_s: float = 20.0) -> None:
    """Wait until the checkpointer has copied a WAL past its threshold. On a loaded
    machine its thread can wait seconds for a core while commits go on; the commits
    here are paced by it so that the bound measures what it does, not the scheduler."""
    deadline = time.monotonic() + within_s
    while True:
        wal, copied = frames(archive)
        if wal < THRESHOLD or copied >= wal:
            return
        assert time.monotonic() < deadline, f"the checkpointer never copied the WAL: {wal, copied}"
        await asyncio.sleep(0.01)


async def test_commits_never_wait_for_the_checkpoint_and_the_wal_stays_bounded(
    running: tuple[Archive, GroupCommitter],
) -> None:
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None and checkpointer.running
    device, key = new_phone(archive)
    bound = bound_pages()
    seen: list[tuple[int, int]] = []
    # 1. The checkpointer is held up (as by a slow card: it holds the same lock a
    # checkpoint holds). Commits go on past the threshold, and none of them copies
    # the WAL: backfilled stays 0 until the bound, where the commit path takes over.
    with archive.checkpoint_lock:
        n = 0
        while not any(f >= THRESHOLD for f, _ in seen) or seen[-1][1] == 0:
            await commit_batch(committer, key, device, n)
            seen.append(frames(archive))
            n += 1
            assert n < 200, f"the WAL never reached its bound: {seen[-5:]}"
        past_threshold = [(f, b) for f, b in seen if THRESHOLD <= f < bound]
        assert past_threshold, "no commit landed between the threshold and the bound"
        assert all(b == 0 for _, b in past_threshold), "a commit checkpointed below the bound"
        # The bound held: the commit that crossed it checkpointed (PASSIVE) itself.
        assert seen[-1][0] >= bound and seen[-1][1] > 0
        per_batch = max(b[0] - a[0] for a, b in itertools.pairwise(seen))
        assert max(f for f, _ in seen) < bound + per_batch
    # 2. Let go: from now on the checkpointer copies the WAL, and the commits never
    # get near the bound.
    before = checkpointer.checkpoints
    seen = []
    for m in range(n, n + 60):
        await commit_batch(committer, key, device, m)
        seen.append(frames(archive))
        await caught_up(archive)
    assert checkpointer.checkpoints > before
    assert max(f for f, _ in seen) < bound, f"the commit path had to checkpoint: {seen}"
    assert checkpointer.failures == 0
    count = archive.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 20 * (n + 60)


async def test_wal_state_is_what_sqlite_says(running: tuple[Archive, GroupCommitter]) -> None:
    archive, committer = running
    device, key = new_phone(archive)
    with archive.checkpoint_lock:  # nothing copies meanwhile
        await commit_batch(committer, key, device, 0)
        wal_frames, _ = frames(archive)
        conn = archive.reader()
        try:
            _, log_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
    assert wal_frames == log_frames > 0
    assert frames(archive) == (log_frames, copied)


async def test_the_checkpointer_stops_with_the_committer(
    running: tuple[Archive, GroupCommitter],
) -> None:
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None
    assert archive.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == bound_pages()
    await asyncio.to_thread(committer.stop)
    assert not checkpointer.running and committer.checkpointer is None
    assert "wal-checkpoint" not in {t.name for t in threading.enumerate()}
    # Alone again (a CLI command), the writer checkpoints at the threshold itself.
    assert archive.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == THRESHOLD
    committer.start()  # and it starts again, for the fixture's stop


async def test_a_failing_checkpoint_is_logged_without_secrets_and_commits_go_on(
    running: tuple[Archive, GroupCommitter],
    archive_keys: dict[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None and checkpointer._conn is not None
    checkpointer._conn.close()  # its connection fails from now on (a failing card)
    device, key = new_phone(archive)
    caplog.set_level(logging.ERROR, "strongroom.archive.checkpointer")
    seen = []
    for n in range(40):
        await commit_batch(committer, key, device, n)
        seen.append(frames(archive)[0])
    assert checkpointer.failures > 0 and checkpointer.running
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("background checkpoint failed" in e for e in errors)
    assert not any(archive_keys["archive"].hex() in e for e in errors)
    # The bound still holds, on the commit path.
    per_batch = max(b - a for a, b in itertools.pairwise(seen))
    assert max(seen) < bound_pages() + per_batch


async def test_an_erasure_scrub_truncates_the_wal_beside_the_checkpointer(
    running: tuple[Archive, GroupCommitter],
) -> None:
    archive, committer = running
    device, key = new_phone(archive)
    for n in range(20):
        await commit_batch(committer, key, device, n)
    assert await asyncio.to_thread(scrub_storage, archive)
    assert await asyncio.to_thread(os.path.getsize, f"{archive.path}-wal") == 0
    await commit_batch(committer, key, device, 99)  # and commits go on


async def test_a_long_reader_holding_the_wal_does_not_make_the_checkpointer_spin(
    running: tuple[Archive, GroupCommitter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup or an export reads for minutes from one snapshot: no checkpoint can copy
    the frames after it. The checkpointer tries once per batch, not in a loop, the
    commits go on, and once the reader is done the WAL is copied and starts again."""
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None
    monkeypatch.setattr(ckpt, "TAIL_PAGES", 30)  # big catch-ups run without holding writes
    device, key = new_phone(archive)
    await commit_batch(committer, key, device, 0)
    reader = archive.reader()
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()  # its snapshot, kept
        batches = 30
        for n in range(1, batches + 1):
            await commit_batch(committer, key, device, n)
        pinned = frames(archive)
        assert pinned[0] > THRESHOLD and pinned[1] < pinned[0]  # held back by the reader
        assert checkpointer.checkpoints <= 2 * batches, "the checkpointer spun"
        await asyncio.sleep(0)  # let a pending wake-up happen (nothing should follow)
        assert frames(archive)[1] < frames(archive)[0]
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    seen = []
    for n in range(batches + 1, batches + 40):
        await commit_batch(committer, key, device, n)
        seen.append(frames(archive)[0])
    assert min(seen) < THRESHOLD, f"the WAL never started again: {seen}"
    assert checkpointer.failures == 0


# A wait in the scrub test longer than this is the two locks taken in opposite
# orders: a deadlock, which fails the test here instead of hanging the suite.
STALL_S = 20.0
T = TypeVar("T")


def unstick(archive: Archive) -> None:
    """Break a lock-order deadlock (one thread holds the write lock and waits for the
    checkpoint lock, another the reverse) by releasing the checkpoint lock from here,
    so the stuck threads finish and the committer stops: the failure is reported
    rather than hanging teardown and the interpreter's exit (an executor thread)."""
    if archive.checkpoint_lock.locked():
        archive.checkpoint_lock.release()


def quiet(task: asyncio.Future[T]) -> asyncio.Future[T]:
    """Retrieve the task's exception when it ends, whether or not the test awaits it: once
    unstick() released a lock under its owner, that owner's release raises, and an
    exception never retrieved is logged at garbage collection, in whatever code runs
    then (under Python 3.11 inside an ast.parse, which it breaks)."""
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


async def bounded(aw: Awaitable[T], archive: Archive, what: str) -> T:
    """`aw`, or a test failure once it has waited STALL_S seconds (a lock-order deadlock)."""
    task = quiet(asyncio.ensure_future(aw))
    done, _ = await asyncio.wait({task}, timeout=STALL_S)
    if not done:
        unstick(archive)
        await asyncio.wait({task}, timeout=STALL_S)
        pytest.fail(
            f"{what} waited {STALL_S:.0f} s: a checkpoint holds writes off while it waits"
            " for the scrub's checkpoint lock, or the reverse (one lock order, review L1)"
        )
    return task.result()


async def test_commits_keep_flowing_while_a_destruction_scrub_holds_the_checkpoint_lock(
    running: tuple[Archive, GroupCommitter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destruction's scrub holds the checkpoint lock through seconds of TRUNCATE
    retries while a long reader (an export) keeps the WAL busy. A checkpoint that
    holds writes off (the checkpointer's short tail, Archive.checkpoint) must not
    wait for it with the write lock held: every commit would stall (review L1).

    The checkpointer is driven through its own lifecycle (started by the committer,
    poked by the commits, stopped with it): every catch-up is a tail here, so while
    the scrub holds the lock the thread is waiting to copy one with writes held off."""
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None and checkpointer.running
    monkeypatch.setattr(ckpt, "LOCK_FREE_CATCH_UPS", 0)
    monkeypatch.setattr(ckpt, "TAIL_PAGES", 1_000_000)
    device, key = new_phone(archive)
    await commit_batch(committer, key, device, 0)
    reader = archive.reader()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM messages").fetchone()  # the export's snapshot
    try:
        # Past the threshold, the checkpointer copies what the reader lets it (the
        # frames before its snapshot): the next round's copies are tails.
        n = 1
        while frames(archive)[1] == 0:
            await commit_batch(committer, key, device, n)
            n += 1
            assert n < 100, f"the checkpointer never copied: {frames(archive)}"
        tails = checkpointer.tails
        scrub = quiet(asyncio.create_task(asyncio.to_thread(scrub_storage, archive, attempts=30)))
        await until(archive.checkpoint_lock.locked, 10, "the scrub")
        began = time.monotonic()
        explicit = quiet(asyncio.create_task(asyncio.to_thread(archive.checkpoint)))
        latencies: list[float] = []
        while not scrub.done():
            t0 = time.monotonic()
            # Each pokes the checkpointer.
            await bounded(commit_batch(committer, key, device, n), archive, "a commit")
            latencies.append(time.monotonic() - t0)
            n += 1
        scrubbing_s = time.monotonic() - began
        # The reader held the WAL throughout: the scrub is pending.
        assert not await bounded(scrub, archive, "the scrub")
        await bounded(explicit, archive, "Archive.checkpoint")
        # The tail it waited to copy during the scrub ran once the lock was free.
        await until(lambda: checkpointer.tails > tails, 10, "the checkpointer's tail")
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    # Seconds of scrub; commits went on all along, none waited for it.
    assert scrubbing_s > 2.0 and len(latencies) >= 5
    assert max(latencies) < scrubbing_s / 3, (scrubbing_s, latencies)
    # The reader gone, the checkpointer copies the WAL and it starts again (shrinks).
    grown = frames(archive)[0]
    assert grown > THRESHOLD
    seen = []
    for m in range(n, n + 20):
        await bounded(commit_batch(committer, key, device, m), archive, "a commit")
        seen.append(frames(archive)[0])
    assert min(seen) < THRESHOLD < grown, seen
    count = archive.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 20 * (n + 20)
    assert checkpointer.failures == 0
    # And it stops with the committer.
    await bounded(asyncio.to_thread(committer.stop), archive, "stopping the committer")
    assert not checkpointer.running
    committer.start()  # for the fixture's stop


async def test_a_dying_checkpointer_says_so_once_and_commits_go_on(
    running: tuple[Archive, GroupCommitter], caplog: pytest.LogCaptureFixture
) -> None:
    """Anything its loop does not catch ends the thread: not restarted, but told
    (the box makes it its `checkpointer` fault) and logged, while commits go on."""
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None and checkpointer.running
    told: list[str] = []
    checkpointer.on_died = told.append

    class Fatal(BaseException):
        pass

    def die() -> bool:
        raise Fatal

    checkpointer.run_once = die  # type: ignore[method-assign]
    caplog.set_level(logging.CRITICAL, "strongroom.archive.checkpointer")
    checkpointer.poke()
    await until(lambda: bool(told), what="on_died")
    await until(lambda: not checkpointer.running, what="the thread's end")
    assert len(told) == 1 and told[0] == checkpointer.died
    assert "background WAL checkpoints stopped since" in told[0] and "Fatal" in told[0]
    assert "the WAL checkpointer stopped" in caplog.text
    device, key = new_phone(archive)
    await commit_batch(committer, key, device, 0)
    assert archive.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 20
