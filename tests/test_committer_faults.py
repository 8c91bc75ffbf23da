"""A box never hangs its phones: the group committer's idle work failing is logged and
set aside while commits go on, and a committer thread that dies anyway fails every
waiting and later write at once with CommitterDied instead of leaving it unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import COUNT_BY_TEXT, message, new_phone
from e2e_helpers import Clock, WebAdmin, prepare_data_dir, start_box, until
from strongroom.archive import committer as committer_module
from strongroom.archive import writes
from strongroom.archive.committer import Committed, CommitterDied, GroupCommitter
from strongroom.archive.store import Archive
from strongroom_panel.state import BoxState
from test_cli_status import strongroom
from test_fts_idle_merge import _many_small_commits, _wait

OWNER = "maitre.durand"
LOGGER = "strongroom.archive.committer"


class Boom(Exception):
    """An unexpected bug in a piece of the committer's idle work."""


class Fatal(BaseException):
    """Something no `except Exception` catches: the thread dies."""


def failing(real: Callable[..., Any], times: int, error: BaseException) -> Callable[..., Any]:
    """`real`, raising `error` the first `times` calls."""
    calls = [0]

    def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return real(*args, **kwargs)

    return call


async def push_and_find(archive: Archive, committer: GroupCommitter, text: str) -> None:
    """Push a message; once acked (within 10 s: never a hang), another connection finds it."""
    phone, key = new_phone(archive, owner=OWNER, name=text)
    op = writes.store_record(message(key, text), phone, OWNER)
    committed = await asyncio.wait_for(committer.submit(op), 10)
    assert committed.tree_head is not None
    with closing(archive.reader()) as reader:
        assert reader.execute(COUNT_BY_TEXT + " = ?", (text,)).fetchone()[0] == 1


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.exc_info is not None]


@pytest.mark.parametrize("piece", ["fold", "checkpointer poke"])
async def test_a_failing_piece_of_background_work_is_logged_once_and_pushes_go_on(
    archive: Archive,
    committer: GroupCommitter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    piece: str,
) -> None:
    caplog.set_level(logging.ERROR, LOGGER)
    # Raises after each of the next three commits: one traceback, not three.
    if piece == "fold":
        monkeypatch.setattr(archive, "fold_if_due", failing(archive.fold_if_due, 3, Boom()))
    else:
        checkpointer = committer.checkpointer
        assert checkpointer is not None
        monkeypatch.setattr(checkpointer, "poke", failing(checkpointer.poke, 3, Boom()))
    for n in range(5):
        await push_and_find(archive, committer, f"after a failing {piece} {n}")
    logged = tracebacks(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert piece in logged[0].getMessage() and "after a failing" not in caplog.text
    assert committer.died is None and committer.committed >= 5


async def test_a_failing_idle_merge_step_is_set_aside_until_the_next_push(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, LOGGER)
    monkeypatch.setattr(committer_module, "IDLE_BEFORE_FTS_MERGE_S", 0.01)
    _many_small_commits(archive)
    assert archive.fts_merge_due
    failed = threading.Event()
    real = archive.merge_fts_if_due

    def step_once_failing(yield_to: Callable[[], bool] | None = None) -> bool:
        if not failed.is_set():
            failed.set()
            raise Boom("merge")
        return real(yield_to)

    monkeypatch.setattr(archive, "merge_fts_if_due", step_once_failing)
    committer = GroupCommitter(archive)
    committer.start()
    try:
        assert await asyncio.to_thread(failed.wait, 10)
        await asyncio.sleep(0.2)  # set aside: no retry in a loop while idle
        assert archive.fts_merge_due and len(tracebacks(caplog)) == 1
        await push_and_find(archive, committer, "pushed after the failed step")
        # The next batch lets the merge try again: it runs to its end.
        await asyncio.to_thread(_wait, lambda: not archive.fts_merge_due)
    finally:
        await asyncio.to_thread(committer.stop)
    assert "idle merge" in tracebacks(caplog)[0].getMessage()


async def test_a_dead_committer_fails_waiting_and_later_writes_at_once(
    archive: Archive, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, key = new_phone(archive, owner=OWNER)
    die_after = [1_000_000]  # batches committed: the fold after that many dies
    queued = threading.Event()
    real = archive.fold_if_due

    def fold_then_die(at: int | None = None) -> Any:
        if committer.committed >= die_after[0]:
            queued.wait(10)  # a push is waiting in the queue when the thread dies
            raise Fatal
        return real(at)

    monkeypatch.setattr(archive, "fold_if_due", fold_then_die)
    await push_and_find(archive, committer, "before")
    die_after[0] = committer.committed + 1
    # This batch is acked (its fold runs after the acks are sent); then the thread dies.
    acked = await asyncio.wait_for(
        committer.submit(writes.store_record(message(key, "acked"), phone, OWNER)), 10
    )
    assert acked.tree_head is not None
    waiting = committer.submit_soon(writes.store_record(message(key, "waiting"), phone, OWNER))
    outcomes: list[Committed | BaseException] = []
    heard = asyncio.Event()

    def then(outcome: Committed | BaseException) -> None:
        outcomes.append(outcome)
        heard.set()

    committer.submit_then(writes.store_record(message(key, "then"), phone, OWNER), then)
    queued.set()
    with pytest.raises(CommitterDied, match="Fatal"):
        await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(heard.wait(), 5)
    assert len(outcomes) == 1 and isinstance(outcomes[0], CommitterDied)
    # Every later write fails at once, by whichever way it is submitted.
    later = writes.store_record(message(key, "later"), phone, OWNER)
    with pytest.raises(CommitterDied):
        await asyncio.wait_for(committer.submit(later), 5)
    with pytest.raises(CommitterDied):
        committer.submit_then(later, then)
    assert committer.died is not None and committer.died_at_ms is not None
    assert not committer.running  # it refuses every write: not reported as running
    with closing(archive.reader()) as reader:
        for text, count in (("acked", 1), ("waiting", 0), ("then", 0), ("later", 0)):
            assert reader.execute(COUNT_BY_TEXT + " = ?", (text,)).fetchone()[0] == count


async def test_a_box_whose_committer_died_says_so_and_refuses_writes_at_once(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    admin = WebAdmin(running.url)
    try:
        await admin.login()  # audited: a write, so before the committer dies
        box = running.box
        assert box.committer is not None and not box.faults
        archive = box.require_archive()
        archive.fold_if_due = failing(archive.fold_if_due, 1, Fatal())  # type: ignore[method-assign]
        # Dies after the next batch (this one, or a write of the box's own just before).
        with contextlib.suppress(CommitterDied):
            await asyncio.wait_for(box.audit("test", "the thread dies after a batch"), 10)
        await until(lambda: "committer" in box.faults, what="the committer fault")
        with pytest.raises(CommitterDied):
            await asyncio.wait_for(box.audit("test", "refused"), 5)
        status, page = await admin.get("/dashboard")
        assert status == 200 and 'data-fault="committer"' in page
        assert "The archive stopped accepting writes" in page
        text = await asyncio.to_thread(strongroom, config.data_dir, "status")
        assert text.returncode == 0, text.stderr
        assert "FAULT committer: writes fail since" in text.stdout, text.stdout
        assert "restart the box" in text.stdout
        as_json = await asyncio.to_thread(strongroom, config.data_dir, "status", "--json")
        assert "Fatal" in json.loads(as_json.stdout)["faults"]["committer"]
        await until(lambda: "committer fault" in running.runtime.status_line, what="status line")
    finally:
        await running.stop()


async def test_a_box_whose_checkpointer_died_says_so_and_keeps_writing(tmp_path: Path) -> None:
    """The WAL checkpointer's thread dying is not an outage (the commit path checkpoints
    at the bound) but no longer silent: the `checkpointer` fault, everywhere the
    committer's shows."""
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    admin = WebAdmin(running.url)
    try:
        await admin.login()
        box = running.box
        assert box.committer is not None and not box.faults
        checkpointer = box.committer.checkpointer
        assert checkpointer is not None and checkpointer.running
        assert running.panel_state() is not BoxState.ERROR

        def die() -> bool:
            raise Fatal

        checkpointer.run_once = die  # type: ignore[method-assign]
        checkpointer.poke()
        await until(lambda: "checkpointer" in box.faults, what="the checkpointer fault")
        assert not checkpointer.running and "Fatal" in box.faults["checkpointer"]
        # Writes go on: an audited change is committed and read back.
        await asyncio.wait_for(box.audit("test", "written after the checkpointer died"), 10)
        with closing(box.require_archive().reader()) as reader:
            audited = "SELECT count(*) FROM audit_events WHERE action = ?"
            assert reader.execute(audited, ("written after the checkpointer died",)).fetchone()[0]
        status, page = await admin.get("/dashboard")
        assert status == 200 and 'data-fault="checkpointer"' in page
        assert "background checkpoints stopped" in page and "Restart the box" in page
        text = await asyncio.to_thread(strongroom, config.data_dir, "status")
        assert text.returncode == 0, text.stderr
        assert "FAULT checkpointer: background WAL checkpoints stopped since" in text.stdout
        assert "restart the box" in text.stdout
        as_json = await asyncio.to_thread(strongroom, config.data_dir, "status", "--json")
        assert "Fatal" in json.loads(as_json.stdout)["faults"]["checkpointer"]
        await until(lambda: "checkpointer fault" in running.runtime.status_line, what="status")
        await until(lambda: running.panel_state() is BoxState.ERROR, what="the panel's error")
        assert box.committer.died is None and box.committer.running
    finally:
        await running.stop()


async def test_a_failure_after_a_durable_commit_acks_the_batch_and_keeps_writing(
    archive: Archive, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a batch is COMMITted, a head read or a proof that fails must neither call it
    unwritten nor stop the writer (review F1): its waiter hears it committed (no proof),
    and the next push is acked with its proof as usual."""
    phone, key = new_phone(archive, owner=OWNER)
    await push_and_find(archive, committer, "before")
    proofs = committer.proofs
    monkeypatch.setattr(proofs, "_add_proofs", failing(proofs._add_proofs, 1, RuntimeError("x")))
    durable = await asyncio.wait_for(
        committer.submit(
            writes.store_record(message(key, "durable"), phone, OWNER),
            log_index_of=lambda stored: stored.log_index,
        ),
        10,
    )
    assert durable.inclusion_proof is None
    assert committer.died is None
    with closing(archive.reader()) as reader:
        assert reader.execute(COUNT_BY_TEXT + " = ?", ("durable",)).fetchone()[0] == 1
    after = await asyncio.wait_for(
        committer.submit(
            writes.store_record(message(key, "after"), phone, OWNER),
            log_index_of=lambda stored: stored.log_index,
        ),
        10,
    )
    assert after.inclusion_proof is not None


class _QueueWithAHook(queue.SimpleQueue[Any]):
    """A queue that runs `before_put` once, just before a put: a window to race in."""

    before_put: Callable[[], None] | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook()
        super().put(item, block, timeout)


async def test_a_submit_racing_stop_is_refused_not_left_waiting(archive: Archive) -> None:
    """stop() runs on another thread (the box closes with asyncio.to_thread): should it
    finish between a submit's check and its put, the job is still refused at once,
    never left in a queue nobody reads (review F2)."""
    c = GroupCommitter(archive)
    racing = _QueueWithAHook()
    c._queue = racing
    c.start()
    phone, key = new_phone(archive, owner=OWNER)

    def stop_now() -> None:
        stopper = threading.Thread(target=c.stop)
        stopper.start()
        stopper.join()

    racing.before_put = stop_now
    future = c.submit_soon(writes.store_record(message(key, "raced"), phone, OWNER))
    with pytest.raises(committer_module.CommitterStopped):
        await asyncio.wait_for(future, 5)


async def test_a_kept_head_that_fails_after_the_commit_does_not_fail_the_write(
    archive: Archive, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept head is written after COMMIT: its failure must not report a durable
    write as failed (nor make the committer replay it; review F5)."""
    phone, key = new_phone(archive, owner=OWNER)
    kept = archive.kept_head
    monkeypatch.setattr(kept, "keep", failing(kept.keep, 1, OSError("witness")))
    committed = await asyncio.wait_for(
        committer.submit(writes.store_record(message(key, "kept"), phone, OWNER)), 10
    )
    assert committed.tree_head is not None
    with closing(archive.reader()) as reader:
        assert reader.execute(COUNT_BY_TEXT + " = ?", ("kept",)).fetchone()[0] == 1
    await push_and_find(archive, committer, "next")
