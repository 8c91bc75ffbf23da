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
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from strongroom.archive import db
from strongroom.archive.checkpointer import Checkpointer, bound_pages
from strongroom.archive.errors import ArchiveError, StorageFull
from strongroom.archive.store import Archive, Txn
from strongroom.proof.sth import SignedTreeHead

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommittedOf(Generic[T]):
    """An op's result, the tree head that covers it, and (if logged) its proof."""

    result: T
    tree_head: SignedTreeHead | None
    inclusion_proof: list[bytes] | None


# Where ops of every kind meet (the batch, the peer session's Commit actions),
# the result's type is not known statically.
Committed = CommittedOf[Any]


# What `submit_then` calls with an op's outcome, on the submitter's event loop.
Then = Callable[[Committed | BaseException], None]


@dataclass
class _Job:
    op: Callable[[Txn], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Committed] | None
    log_index_of: Callable[[Any], int | None] | None
    then: Then | None = None


_STOP = object()

# Consistency proofs the committer keeps (old size, new size): a few batches' worth
# for every connected phone (~27 µs each to compute at 1M leaves, ~0.7 KiB).
KEPT_PROOFS = 256

# How long the queue stays empty before the full-text index's idle merge starts.
IDLE_BEFORE_FTS_MERGE_S = 0.25


class CommitterStopped(ArchiveError):
    """The committer is not running; nothing was written."""


class GroupCommitter:
    def __init__(self, archive: Archive, *, max_batch: int = 1024) -> None:
        self.archive = archive
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.committed = 0
        # The WAL is checkpointed on a thread of its own while this one commits
        # (archive/checkpointer.py): no group commit waits for a checkpoint.
        self.checkpointer: Checkpointer | None = None
        # (old size, new size) -> the consistency proof to each batch's new head from
        # the sizes phone sessions hold (the last head each was sent) and from the
        # previous batch's (what a session holds once that batch's acks are stamped),
        # written before the new batch's waiters wake: a phone session sends one with
        # its first ack of the batch (peer/log_proofs.py), which otherwise waited for
        # a reader thread to read it, and every other ack of the batch behind that one.
        # `held_sizes` is set by the peer service (LogProofs.held_sizes); None (no
        # peer service) or no size held: nothing is proven here. Filled on this
        # thread, read on event loops (single dict operations).
        self.held_sizes: Callable[[], Collection[int]] | None = None
        self.consistency_proofs: dict[tuple[int, int], list[bytes]] = {}
        self._previous_size = 0

    def start(self) -> None:
        if self._thread is None:
            self.checkpointer = self.archive.checkpointer()
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
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job):
                    _resolve(item, CommitterStopped("the archive stopped accepting writes"))

    @property
    def running(self) -> bool:
        return self._thread is not None

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
        if self._thread is None:
            raise CommitterStopped("the archive is not accepting writes")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Committed] = loop.create_future()
        self._queue.put(_Job(op, loop, future, log_index_of))
        return future

    def submit_then(
        self,
        op: Callable[[Txn], Any],
        then: Then,
        *,
        log_index_of: Callable[[Any], int | None] | None = None,
    ) -> None:
        """Queue op; `then` is called on this event loop with its Committed, or what the
        op raised, once its batch is durable: straight from the batch's one callback
        into the loop (no future, no loop turn per op: the push path, peer/chain.py).
        Raises CommitterStopped at once when not running."""
        if self._thread is None:
            raise CommitterStopped("the archive is not accepting writes")
        self._queue.put(_Job(op, asyncio.get_running_loop(), None, log_index_of, then))

    def _run(self) -> None:
        while True:
            first = self._next()
            if first is _STOP:
                return
            jobs: list[_Job] = [first]  # type: ignore[list-item]
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
            self._commit(jobs)
            # The conversation index's fold, if due, after the acks are on their way
            # (review L7): on this thread and connection, a step per transaction, one
            # per commit and more while no push waits (Archive.fold_if_due).
            self.archive.fold_if_due()
            while self.archive.folding and self._queue.empty():
                self.archive.fold_if_due()
            if self.checkpointer is not None:
                self.checkpointer.poke()
            if stop_after:
                return

    def _next(self) -> _Job | object:
        """The next queued item; while none comes, the full-text index's idle merge.

        Its steps start once the queue has been empty for IDLE_BEFORE_FTS_MERGE_S
        (under a steady ingest it never is, and FTS5's own merges on the ack path stay
        16 at a time), and stop as soon as a push is queued: that push waits for the
        step under way (fts_merge.STEP_PAGES), never for the whole merge."""
        while self.archive.fts_merge_due:
            try:
                return self._queue.get(timeout=IDLE_BEFORE_FTS_MERGE_S)
            except queue.Empty:
                pass
            while self._queue.empty() and self.archive.merge_fts_if_due():
                if self.checkpointer is not None:
                    self.checkpointer.poke()
        return self._queue.get()

    def _commit(self, jobs: list[_Job]) -> None:
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
            _resolve_all(jobs, [exc] * len(jobs))
            return
        self.batches += 1
        self.committed += len(jobs)
        head = batch.tree_head or self.archive.latest_tree_head()
        results = batch.results
        # Each outcome is built once, with its proof (CommittedOf itself, not the
        # Committed alias: calling a subscripted generic costs a failed setattr per
        # object on a frozen dataclass, twice per record on this thread).
        proofs: dict[int, list[bytes] | BaseException] = {}  # position -> proof or failure
        wanted: list[tuple[int, int]] = []  # (position in jobs, log index) needing a proof
        for position, (job, result) in enumerate(zip(jobs, results, strict=True)):
            try:
                index = self._proof_index(job, result, head)
            except Exception as exc:  # e.g. a faulty log_index_of: its caller only
                proofs[position] = exc
                continue
            if index is not None:
                wanted.append((position, index))
        if wanted and head is not None:
            self._add_proofs(wanted, head, proofs)
        if head is not None:
            self._keep_consistency(head.tree_size)
        outcomes: list[Committed | BaseException] = []
        for position, result in enumerate(results):
            proof = proofs.get(position)
            if isinstance(proof, BaseException):
                outcomes.append(proof)
            else:
                outcomes.append(CommittedOf(result, head, proof))
        _resolve_all(jobs, outcomes)

    def _add_proofs(
        self,
        wanted: list[tuple[int, int]],
        head: SignedTreeHead,
        proofs: dict[int, list[bytes] | BaseException],
    ) -> None:
        try:
            # One pass for the whole batch: the new leaves' paths share most nodes.
            found = self.archive.inclusion_proofs([i for _, i in wanted], head.tree_size)
        except Exception:
            # A damaged node store: find out whose proof fails, fail only those.
            for position, index in wanted:
                try:
                    proofs[position] = self.archive.inclusion_proof(index, head.tree_size)
                except Exception as exc:
                    proofs[position] = exc
            return
        for (position, _), proof in zip(wanted, found, strict=True):
            proofs[position] = proof

    def _keep_consistency(self, size: int) -> None:
        """Prove the new head of `size` from the sizes sessions hold, if any do."""
        previous, self._previous_size = self._previous_size, size
        held_sizes = self.held_sizes
        if held_sizes is None or previous == size:
            return  # no peer service, or nothing logged since
        held = held_sizes()
        if not held:
            return  # no session asks for consistency proofs
        kept = self.consistency_proofs
        try:
            for old in {*held, previous}:
                if 0 < old < size:
                    kept[(old, size)] = self.archive.consistency_proof(old, size)
        except Exception:  # a damaged node store: the sessions read it (and say why)
            log.exception("no consistency proof up to %d", size)
        while len(kept) > KEPT_PROOFS:  # the oldest first
            del kept[next(iter(kept))]

    @staticmethod
    def _proof_index(job: _Job, result: Any, head: SignedTreeHead | None) -> int | None:
        if job.log_index_of is None or head is None or isinstance(result, BaseException):
            return None
        index = job.log_index_of(result)
        if index is None or not 0 <= index < head.tree_size:
            return None
        return index


def _resolve_all(jobs: list[_Job], outcomes: list[Committed | BaseException]) -> None:
    """Wake every waiter of a batch with one call into each event loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Committed | BaseException]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job, outcome))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver_all, items)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more


def _deliver_all(items: list[tuple[_Job, Committed | BaseException]]) -> None:
    for job, outcome in items:
        _deliver(job, outcome)


def _deliver(job: _Job, outcome: Committed | BaseException) -> None:
    if job.then is not None:
        if not isinstance(outcome, BaseException) and isinstance(outcome.result, BaseException):
            outcome = outcome.result  # the op raised: its caller learns what
        try:
            job.then(outcome)
        except Exception:  # one caller's fault: the batch's other callers still hear
            log.exception("a commit's callback failed")
        return
    assert job.future is not None
    if job.future.done():
        return
    if isinstance(outcome, BaseException):
        job.future.set_exception(outcome)
    elif isinstance(outcome.result, BaseException):  # the op raised: its caller learns what
        job.future.set_exception(outcome.result)
    else:
        job.future.set_result(outcome)


def _resolve(job: _Job, outcome: Committed | BaseException) -> None:
    try:
        job.loop.call_soon_threadsafe(_deliver, job, outcome)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
