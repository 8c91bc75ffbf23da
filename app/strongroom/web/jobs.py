"""Long jobs (export, backup, verify, restore) run in the background.

A job is an asyncio task with a progress figure the UI polls (JSON endpoint,
or a meta refresh without JavaScript). The person who started it can leave
the page and come back: the registry keeps the job, its result file and its
outcome until it is old. Blocking work belongs in `asyncio.to_thread`; the
progress callback is safe to call from that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_FINISHED_S = 24 * 3600.0
MAX_JOBS = 200


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class JobResult:
    """What a finished job leaves: a summary msgid and, maybe, a file to download."""

    summary: str = ""
    file: Path | None = None
    download_name: str | None = None
    problems: tuple[str, ...] = ()
    # An encrypted spool's key (office.spool), held in memory only, and the log
    # entries the file holds: the download refuses once any has been destroyed.
    file_key: bytes | None = field(default=None, repr=False)
    log_indexes: tuple[int, ...] = ()


Progress = Callable[[float, str], None]
JobBody = Callable[[Progress], Awaitable[JobResult]]


@dataclass
class Job:
    id: str
    kind: str
    owner: str
    started_at: float
    state: JobState = JobState.RUNNING
    fraction: float = 0.0
    stage: str = ""
    result: JobResult | None = None
    error: str | None = None
    finished_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def report(self, fraction: float, stage: str = "") -> None:
        with self._lock:
            self.fraction = min(1.0, max(0.0, fraction))
            if stage:
                self.stage = stage

    @property
    def percent(self) -> int:
        return round(self.fraction * 100)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "percent": self.percent,
            "stage": self.stage,
            "has_file": bool(self.result and self.result.file),
        }


class JobRegistry:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, kind: str, owner: str, body: JobBody) -> Job:
        self._prune()
        job = Job(id=secrets.token_urlsafe(12), kind=kind, owner=owner, started_at=self.clock())
        self._jobs[job.id] = job
        task = asyncio.get_running_loop().create_task(self._run(job, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, body: JobBody) -> None:
        try:
            result = await body(job.report)
        except asyncio.CancelledError:
            job.state, job.error = JobState.FAILED, "cancelled"
            raise
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.state, job.error = JobState.FAILED, str(exc) or type(exc).__name__
        else:
            job.result = result
            job.fraction = 1.0
            job.state = JobState.DONE
        finally:
            job.finished_at = self.clock()
            job._finished.set()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def for_owner(self, owner: str | None = None) -> list[Job]:
        jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted(jobs, key=lambda j: j.started_at, reverse=True)

    async def wait(self, job_id: str) -> Job:
        """Wait for a job to finish (tests, CLI)."""
        job = self._jobs[job_id]
        await job._finished.wait()
        return job

    def _prune(self) -> None:
        now = self.clock()
        for job in list(self._jobs.values()):
            old = job.finished_at is not None and now - job.finished_at > KEEP_FINISHED_S
            if old or (len(self._jobs) > MAX_JOBS and job.state is not JobState.RUNNING):
                self._forget(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        if job.result and job.result.file:
            with contextlib.suppress(OSError):
                job.result.file.unlink()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
