"""Group commit: many pushes from many phones share one durable transaction.

The asyncio side calls `await committer.submit(op)`. One writer thread takes
everything queued, runs it as one `Archive.write_batch` (one fsync), computes
the inclusion proof of every new log entry against the batch's signed tree
head, and wakes each waiter. While a batch is being fsynced the next one
accumulates, so throughput grows with load while every ack still means "on
disk".
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from strongroom.archive import db
from strongroom.archive.checkpointer import Checkpointer, bound_pages
from strongroom.archive.commit_jobs import Committed as Committed
from strongroom.archive.commit_jobs import CommittedOf as CommittedOf
from strongroom.archive.commit_jobs import Job, resolve, resolve_all
from strongroom.archive.commit_jobs import Then as Then
from strongroom.archive.commit_proofs import KEPT_PROOFS as KEPT_PROOFS
from strongroom.archive.commit_proofs import BatchProofs
from strongroom.archive.errors import ArchiveError, StorageFull
from strongroom.archive.store import Archive, Txn
from strongroom.utc import iso_utc

T = TypeVar("T")
log = logging.getLogger(__name__)


_STOP = object()

# How long the queue stays empty before the full-text index's idle merge starts.
IDLE_BEFORE_FTS_MERGE_S = 0.25
# The longest quiet spell the idle merge waits for after steps that yielded to pushes.
QUIET_BEFORE_RETRY_MAX_S = 8.0


class CommitterStopped(ArchiveError):
    """The committer is not running; nothing was written."""


class CommitterDied(CommitterStopped):
    """The committer's thread ended on an error: every waiting and later write fails
    with this at once (no push hangs); `strongroom status` and the dashboard say so."""


class GroupCommitter:
    def __init__(self, archive: Archive, *, max_batch: int = 1024) -> None:
        self.archive = archive
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.committed = 0
        # The quiet spell before the idle merge's next step (_next).
        self._merge_quiet_s = IDLE_BEFORE_FTS_MERGE_S
        # The WAL is checkpointed on a thread of its own while this one commits
        # (archive/checkpointer.py): no group commit waits for a checkpoint.
        self.checkpointer: Checkpointer | None = None
        # Each batch's inclusion proofs, and the consistency proofs phone sessions will
        # send with their first ack of it (archive/commit_proofs.py).
        self.proofs = BatchProofs(archive)
        # Set once the thread has died (never cleared): what every submit then raises.
        self.died: CommitterDied | None = None
        self.died_at_ms: int | None = None
        # Told on the dying thread, with a line for the box's faults (box.py).
        self.on_died: Callable[[str], None] | None = None
        # The same for the checkpointer's thread, handed to each one start() makes.
        self.on_checkpointer_died: Callable[[str], None] | None = None
        # The jobs of the batch under way (resolved with `died` should the thread die).
        self._inflight: list[Job] = []
        # Idle/background work that failed (logged once until it works again), and
        # whether the idle merge is set aside until the next batch.
        self._failing: set[str] = set()
        self._merge_set_aside = False

    @property
    def held_sizes(self) -> Callable[[], Collection[int]] | None:
        """The sizes phone sessions hold, set by the peer service (BatchProofs)."""
        return self.proofs.held_sizes

    @held_sizes.setter
    def held_sizes(self, sizes: Callable[[], Collection[int]] | None) -> None:
        self.proofs.held_sizes = sizes

    @property
    def consistency_proofs(self) -> dict[tuple[int, int], list[bytes]]:
        """(old size, new size) -> proof, kept for the sessions (BatchProofs)."""
        return self.proofs.consistency_proofs

    def start(self) -> None:
        if self._thread is None:
            self.checkpointer = self.archive.checkpointer()
            self.checkpointer.on_died = self.on_checkpointer_died
            self.checkpointer.start()
            self.archive.set_autocheckpoint(bound_pages())
            # The kept head is flushed by a thread of its own, never before an ack.
            self.archive.kept_head.start_flushing()
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
            if self.checkpointer is not None:
                self.checkpointer.stop()
                self.checkpointer = None
            self.archive.set_autocheckpoint(db.WAL_AUTOCHECKPOINT_PAGES)
            self.archive.kept_head.stop_flushing()
            # A submit that raced with stop() queued behind _STOP: tell it, or it waits forever.
            self._drain(CommitterStopped("the archive stopped accepting writes"))

    def _drain(self, error: CommitterStopped) -> None:
        """Fail every queued job with `error` (any thread may call it: each job is
        taken off the queue, so resolved, once)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Job):
                resolve(item, type(error)(*error.args))  # each waiter its own

    @property
    def running(self) -> bool:
        """Started, not stopped, and its thread has not died (a dead one refuses writes)."""
        return self._thread is not None and self.died is None

    async def submit(
        self,
        op: Callable[[Txn], T],
        *,
        log_index_of: Callable[[T], int | None] | None = None,
    ) -> CommittedOf[T]:
        """Queue op; return once its batch is durable. Raises what the op raised."""
        return await self.submit_soon(op, log_index_of=log_index_of)

    def submit_soon(
        self,
        op: Callable[[Txn], T],
        *,
        log_index_of: Callable[[T], int | None] | None = None,
    ) -> asyncio.Future[CommittedOf[T]]:
        """`submit` without a coroutine (a caller that goes on in a done-callback):
        op is queued now; the future ends once its batch is durable, failed with what
        the op raised. Raises CommitterStopped at once when not running."""
        if self.died is not None:
            raise CommitterDied(*self.died.args)  # a fresh one: no traceback piles up
        if self._thread is None:
            raise CommitterStopped("the archive is not accepting writes")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Committed] = loop.create_future()
        self._queue.put(Job(op, loop, future, log_index_of))
        self._after_put()
        return future

    def submit_then(
        self,
        op: Callable[[Txn], Any],
        then: Then,
        *,
        log_index_of: Callable[[Any], int | None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Queue op; `then` is called on this event loop with its Committed, or what the
        op raised, once its batch is durable: straight from the batch's one callback
        into the loop (no future, no loop turn per op: the push path, peer/chain.py).
        `loop`: the running loop, if the caller keeps it (asyncio.get_running_loop()
        asks the kernel for the process id each call: ~1.5 µs a push on the event loop
        here). Raises CommitterStopped at once when not running."""
        if self.died is not None:
            raise CommitterDied(*self.died.args)  # a fresh one: no traceback piles up
        if self._thread is None:
            raise CommitterStopped("the archive is not accepting writes")
        self._queue.put(Job(op, loop or asyncio.get_running_loop(), None, log_index_of, then))
        self._after_put()

    def _after_put(self) -> None:
        """A job queued as the thread died or stop() ran: the drain that ran before
        the put missed it, so drain again (each job is taken off the queue once)."""
        if self.died is not None:
            self._drain(self.died)
        elif self._thread is None:  # stop() ran between the check and the put (review F2)
            self._drain(CommitterStopped("the archive stopped accepting writes"))

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the thread's end: every waiter hears
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        log.critical("the group committer stopped: writes now fail", exc_info=exc)
        died = CommitterDied(f"the archive's committer stopped ({type(exc).__name__})")
        self.died_at_ms = int(time.time() * 1000)
        self.died = died  # set before the drain: a later submit raises or drains itself
        inflight, self._inflight = self._inflight, []
        for job in inflight:
            if not job.resolved:
                resolve(job, CommitterDied(*died.args))
        self._drain(died)
        if self.on_died is not None:
            try:
                self.on_died(f"writes fail since {iso_utc(self.died_at_ms)}: {died}")
            except Exception:
                log.exception("the committer's on_died failed")

    def _guarded(self, piece: str, work: Callable[[], object]) -> bool:
        """Idle/background work that must never take the thread down: an unexpected
        error is logged (with its traceback, once until the piece works again) and
        False returned: the piece is abandoned for now. The pieces roll their own
        transaction back (conv_keys.Folder.step, fts_merge.merge_step)."""
        try:
            work()
        except Exception:
            if piece not in self._failing:
                self._failing.add(piece)
                log.exception("the committer's %s failed; set aside, commits go on", piece)
            return False
        self._failing.discard(piece)
        return True

    def _poke_checkpointer(self) -> None:
        if self.checkpointer is not None:
            self._guarded("checkpointer poke", self.checkpointer.poke)

    def _fold(self) -> None:
        # The conversation index's fold, if due, after the acks are on their way
        # (review L7): on this thread and connection, a step per transaction, one
        # per commit and more while no push waits (Archive.fold_if_due).
        if not self._guarded("fold", self.archive.fold_if_due):
            return
        while self.archive.folding and self._queue.empty():
            if not self._guarded("fold", self.archive.fold_if_due):
                return

    def _loop(self) -> None:
        while True:
            first = self._next()
            if first is _STOP:
                return
            jobs: list[Job] = [first]  # type: ignore[list-item]
            stop_after = False
            while len(jobs) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop_after = True
                    break
                jobs.append(item)  # type: ignore[arg-type]
            self._inflight = jobs
            self._commit(jobs)
            self._inflight = []
            self._merge_set_aside = False  # a new batch: the idle merge may try again
            self._fold()
            self._poke_checkpointer()
            if stop_after:
                return

    def _next(self) -> Job | object:
        """The next queued item; while none comes, the full-text index's idle merge.

        Its steps start once the queue has been empty for IDLE_BEFORE_FTS_MERGE_S
        (under a steady ingest it never is, and FTS5's own merges on the ack path stay
        16 at a time), and stop as soon as a push is queued: the step under way is
        interrupted and rolled back (fts_merge.FtsIndex.merge_if_due), so the push
        waits for no step. After a step that yielded, the next try waits for a quiet
        spell twice as long (up to QUIET_BEFORE_RETRY_MAX_S): a long step is not
        started again and again between pushes only to be thrown away."""
        while self.archive.fts_merge_due and not self._merge_set_aside:
            try:
                return self._queue.get(timeout=self._merge_quiet_s)
            except queue.Empty:
                pass
            while self._queue.empty() and self._merge_step():
                self._merge_quiet_s = IDLE_BEFORE_FTS_MERGE_S
                self._poke_checkpointer()
            if self.archive.fts_merge_yielded:
                self._merge_quiet_s = min(2 * self._merge_quiet_s, QUIET_BEFORE_RETRY_MAX_S)
            else:
                self._merge_quiet_s = IDLE_BEFORE_FTS_MERGE_S
        self._merge_quiet_s = IDLE_BEFORE_FTS_MERGE_S  # the next merge starts afresh
        return self._queue.get()

    def _merge_step(self) -> bool:
        """One idle merge step (True while due); one that fails sets the merge aside
        until the next batch."""
        due = [False]

        def step() -> None:
            due[0] = self.archive.merge_fts_if_due(self._push_waits)

        if not self._guarded("idle merge", step):
            self._merge_set_aside = True
        return due[0]

    def _push_waits(self) -> bool:
        """Something is queued (a push, or stop): the idle merge's step gives way."""
        return not self._queue.empty()

    def _commit(self, jobs: list[Job]) -> None:
        try:
            batch = self.archive.write_batch([job.op for job in jobs], fold=False)
        except BaseException as exc:
            if len(jobs) > 1 and isinstance(exc, Exception) and not isinstance(exc, StorageFull):
                # One op failed in a way that took the batch down (a bug, a
                # constraint): replay them one by one so only its caller fails.
                for job in jobs:
                    self._commit([job])
                return
            # The disk is full (or worse): every waiter learns why.
            resolve_all(jobs, [exc] * len(jobs))
            return
        self.batches += 1
        self.committed += len(jobs)
        try:
            outcomes = self.proofs.outcomes(jobs, batch.results, batch.tree_head)
        except Exception:
            # The batch is durable: a head read or a proof that fails after its COMMIT
            # must neither call it unwritten nor stop the writer (review F1). Each op
            # is answered committed, without a proof (a session then says why).
            log.exception("after a durable commit of %d ops", len(jobs))
            outcomes = [CommittedOf(result, batch.tree_head, None) for result in batch.results]
        resolve_all(jobs, outcomes)
