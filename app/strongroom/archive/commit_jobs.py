"""A group commit's jobs and how their waiters are woken (archive/committer.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from strongroom.archive.store import Txn
from strongroom.proof.sth import SignedTreeHead

T = TypeVar("T")
log = logging.getLogger("strongroom.archive.committer")


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
class Job:
    op: Callable[[Txn], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Committed] | None
    log_index_of: Callable[[Any], int | None] | None
    then: Then | None = None
    resolved: bool = False  # handed to its event loop (a dying thread skips it)


def resolve_all(jobs: list[Job], outcomes: list[Committed | BaseException]) -> None:
    """Wake every waiter of a batch with one call into each event loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Committed | BaseException]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        job.resolved = True
        by_loop.setdefault(job.loop, []).append((job, outcome))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver_all, items)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more


def _deliver_all(items: list[tuple[Job, Committed | BaseException]]) -> None:
    for job, outcome in items:
        _deliver(job, outcome)


def _deliver(job: Job, outcome: Committed | BaseException) -> None:
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


def resolve(job: Job, outcome: Committed | BaseException) -> None:
    try:
        job.loop.call_soon_threadsafe(_deliver, job, outcome)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
