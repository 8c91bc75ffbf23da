"""The night jobs (backup, retention, verify) run inside the unlocked service.

A separate batch process cannot open the archive in attended mode: it has no
passphrase. So the systemd timers start `strongroom backup|retention-run|verify`,
which find the running box and ask it over the control socket
(`POST /jobs/<name>`); the box runs the job on its open archive, in a worker
thread, and answers with the outcome. With no box running, the commands open
the archive themselves as before (cli/common.unlocked_box).

Every run ends in one of three outcomes, each an audit event `nightjob.<outcome>`
whose target is the job's name:

- done: the job did its work (details: what it did);
- failed: it raised (details: why); the panel shows JOB_FAILED until the same
  job succeeds again, the dashboard and `systemctl status` say which one;
- skipped: the box was locked (attended mode, nobody unlocked it since the
  reboot). A locked archive takes no audit event, so skipped runs are kept
  in memory and written as soon as the box is unlocked.

The command exits 0 (done), 1 (failed) or 75 (EX_TEMPFAIL: skipped), so the
timer's unit shows the failure in `systemctl status` and `systemctl --failed`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongroom.archive.db import Connection
from strongroom.archive.verify_runs import MODES, Mode
from strongroom.box import Box
from strongroom.integrity import IntegrityStatus
from strongroom.office import backup
from strongroom.office.service import retention_summary, run_op
from strongroom.utc import iso_utc
from strongroom.web.settings import BACKUP_TARGET, get_setting

log = logging.getLogger(__name__)

JOBS = ("backup", "retention", "verify")
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
AUDIT_PREFIX = "nightjob."
EXIT_CODES = {DONE: 0, FAILED: 1, SKIPPED: 75}


@dataclass(frozen=True)
class JobOutcome:
    """How one run of one night job ended, as the CLI, dashboard and panel need it."""

    job: str
    outcome: str  # DONE | FAILED | SKIPPED
    summary: str  # one line for a person (CLI output, dashboard, STATUS=)
    at: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "outcome": self.outcome,
            "summary": self.summary,
            "at": self.at,
            "at_utc": iso_utc(self.at * 1000),
            "details": self.details,
            "exit_code": self.exit_code,
        }

    def audit_details(self) -> dict[str, Any]:
        return {"summary": self.summary, **self.details}


class JobFailed(Exception):
    """A job ran and its work failed (the message says why, for a person)."""


Verify = Callable[[Mode], Awaitable[IntegrityStatus | None]]


class NightJobs:
    """Runs the night jobs for a box and remembers how each last ended."""

    def __init__(
        self,
        box: Box,
        clock: Callable[[], float],
        verify: Verify,
        on_change: Callable[[], None],
        retention_guard: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.box = box
        self.clock = clock
        self._verify = verify
        self._on_change = on_change
        # Why retention must not destroy now (e.g. the clock went back), or None.
        self._retention_guard = retention_guard
        self.last: dict[str, JobOutcome] = {}
        self._unaudited: list[JobOutcome] = []
        self._lock = asyncio.Lock()

    # -- what the panel, the dashboard and STATUS= show ----------------------------------

    def failures(self) -> list[JobOutcome]:
        """The jobs whose last run did not succeed (failed or skipped), by job order."""
        return [o for job in JOBS if (o := self.last.get(job)) and o.outcome != DONE]

    @property
    def failed(self) -> bool:
        """A job failed (not merely skipped): the panel's fault pattern."""
        return any(o.outcome == FAILED for o in self.failures())

    def status_line(self) -> str:
        return "; ".join(f"{o.job} {o.outcome}: {o.summary}" for o in self.failures())

    # -- running -------------------------------------------------------------------------

    async def run(self, job: str, target: Path | None = None, mode: Mode = "full") -> JobOutcome:
        """Run `job` now (`target`: a backup directory other than the configured one;
        `mode`: the verify job's full, incremental or scheduled run)."""
        if job not in JOBS:
            raise ValueError(f"unknown night job {job!r}")
        if mode not in MODES:
            raise ValueError(f"unknown verify mode {mode!r}")
        async with self._lock:  # one job at a time: they all read the whole archive
            outcome = await self._run(job, target, mode)
        self.last[job] = outcome
        if outcome.outcome == SKIPPED:
            self._unaudited.append(outcome)
        else:
            await self._audit(outcome)
        level = logging.INFO if outcome.outcome == DONE else logging.ERROR
        log.log(level, "night job %s %s: %s", job, outcome.outcome, outcome.summary)
        self._on_change()
        return outcome

    async def _run(self, job: str, target: Path | None, mode: Mode) -> JobOutcome:
        if self.box.archive is None:
            reason = f"the box is {self.box.phase.value}: unlock it so that night jobs can run"
            return JobOutcome(job, SKIPPED, reason, self.clock(), {"reason": "locked"})
        try:
            summary, details = await self._body(job, target, mode)
        except JobFailed as exc:  # said for a person, logged once by run(): no traceback
            return JobOutcome(job, FAILED, str(exc), self.clock())
        except Exception as exc:  # any failure of the work is the outcome we report
            log.exception("night job %s failed", job)
            return JobOutcome(job, FAILED, str(exc) or type(exc).__name__, self.clock())
        return JobOutcome(job, DONE, summary, self.clock(), details)

    async def _body(self, job: str, target: Path | None, mode: Mode) -> tuple[str, dict[str, Any]]:
        if job == "backup":
            return await asyncio.to_thread(self._backup, target)
        if job == "retention":
            return await asyncio.to_thread(self._retention)
        return await self._verify_archive(mode)

    def _backup(self, target: Path | None) -> tuple[str, dict[str, Any]]:
        archive = self.box.require_archive()
        keys = self.box.keys
        assert keys is not None  # an open archive has its keys
        target = target or self.box.config.backup_target
        if target is None:
            conn = archive.reader()
            try:
                chosen = get_setting(conn, BACKUP_TARGET)
            finally:
                conn.close()
            target = Path(chosen) if chosen else None
        if target is None:
            raise JobFailed("no backup target (Backups page, or backup_target in box.toml)")
        result = backup.run(archive, target, keys.backup_key, actor="backup-job")
        summary = (
            f"backup set {result.set_dir.name}: tree size {result.tree_size}, "
            f"{result.blobs} blobs ({result.blobs_copied} new)"
        )
        return summary, {"set": result.set_dir.name, "tree_size": result.tree_size}

    def _retention(self) -> tuple[str, dict[str, Any]]:
        refusal = self._retention_guard()
        if refusal is not None:
            raise JobFailed(refusal)
        # The records office's own daily run, so the timer, the CLI and the
        # web page report it in the same words.
        result = run_op(self.box.require_archive(), "retention.run", {}, int(self.clock() * 1000))
        return retention_outcome(result)

    async def _verify_archive(self, mode: Mode) -> tuple[str, dict[str, Any]]:
        status = await self._verify(mode)
        if status is None:
            raise JobFailed("the archive closed while the check was starting")
        if not status.ok:
            problems = "; ".join(status.problems[:3])
            raise JobFailed(
                f"{status.kind} verify: {status.problem_count} problem(s): {problems}"
                + _notes(status)
            )
        details = {"leaves": status.leaves, "notes": list(status.notes)}
        return verify_summary(status), details | (status.run.to_json() if status.run else {})

    # -- the audit trail -----------------------------------------------------------------

    async def _audit(self, outcome: JobOutcome) -> None:
        action = AUDIT_PREFIX + outcome.outcome
        await self.box.audit("timer", action, outcome.job, outcome.audit_details())

    async def flush_skipped(self) -> None:
        """After an unlock: write the runs skipped while the archive was locked."""
        pending, self._unaudited = self._unaudited, []
        for outcome in pending:
            await self._audit(outcome)

    def load_last(self, conn: Connection) -> None:
        """After an unlock: the last outcome of each job, from the audit trail.

        A failure from before a restart keeps showing until the job succeeds.
        """
        for job, outcome in last_outcomes(conn).items():
            current = self.last.get(job)
            if current is None or current.at < outcome.at:
                self.last[job] = outcome


def retention_outcome(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A retention run's one line and counts: the night job's answer, run by the box or,
    box stopped, by `strongroom retention-run` itself (cli/office.py)."""
    details = {k: result[k] for k in ("destroyed", "to_review", "held", "kept")}
    return retention_summary(result).replace("\n", " "), details


def _notes(status: IntegrityStatus) -> str:
    """What verify said beside its problems (an acknowledged loss, a kept head not
    written: archive/losses.py), appended to its one line: said, never failed on."""
    return "".join(f"; NOTE: {note}" for note in status.notes)


def verify_summary(status: IntegrityStatus) -> str:
    """One line saying what a passing verify covered (CLI, dashboard, STATUS=)."""
    run = status.run
    notes = _notes(status)
    if run is None or run.kind == "full":
        size = run.tree_size if run else status.leaves
        return f"OK: the archive verifies (full verify, {size} log leaves){notes}"
    return (
        f"OK: the archive verifies (incremental, to tree size {run.tree_size}:"
        f" {run.tree_size - run.from_size}"
        f" new log entries since size {run.from_size}, older log [{run.sample_from},"
        f" {run.sample_to}) re-read, {run.records} records checked){notes}"
    )


def last_outcomes(conn: Connection) -> dict[str, JobOutcome]:
    """The newest `nightjob.*` audit event of each job (what the dashboard shows)."""
    found: dict[str, JobOutcome] = {}
    for job in JOBS:
        row = conn.execute(
            "SELECT at, action, details FROM audit_events"
            " WHERE action LIKE 'nightjob.%' AND target = ? ORDER BY id DESC LIMIT 1",
            (job,),
        ).fetchone()
        if row is None:
            continue
        try:
            details = json.loads(row[2]) if row[2] else {}
        except ValueError:
            details = {}
        if not isinstance(details, dict):
            details = {}
        summary = str(details.pop("summary", ""))
        outcome = str(row[1])[len(AUDIT_PREFIX) :]
        found[job] = JobOutcome(job, outcome, summary, int(row[0]) / 1000, details)
    return found
