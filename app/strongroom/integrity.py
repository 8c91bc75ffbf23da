"""The periodic integrity check: re-verify the archive while the box runs.

A flipped bit on the SD card, a damaged blob or someone editing the database
with the key must not wait for an admin to click "verify": the box verifies on
a schedule (the nightly timer; the box's own 24-hour check runs only when no
scheduled run was made in the last 24 hours, so a box without the timer, a dev
box, still checks daily and an appliance does not check twice), in a worker
thread on a reader connection of its own, and says what it found. A scheduled check is
incremental, and full once a week (archive/verify_runs.py); every check is kept
in the archive's `verifications` table, which the integrity page shows. The
runtime turns a failed check into the INTEGRITY_FAILURE panel state, an audit
event and the problem list the dashboard shows.

The check runs inside one read transaction, so it sees a single snapshot of
the WAL: phones may keep pushing while it runs without the counts it compares
(leaves, records, tree head) drifting apart and raising false alarms.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from strongroom.archive.errors import ArchiveError
from strongroom.archive.open_failure import classify_open_failure
from strongroom.archive.store import Archive
from strongroom.archive.verify_runs import Mode, Verification, run_verification

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 24 * 3600.0
# The dashboard and the audit trail keep this many problem lines; the count is kept whole.
MAX_PROBLEMS_KEPT = 50

AUDIT_OK = "integrity.ok"
AUDIT_FAILED = "integrity.failed"


@dataclass(frozen=True)
class IntegrityStatus:
    """The outcome of one check, as the dashboard and the panel need it."""

    checked_at: float
    ok: bool
    problems: tuple[str, ...]
    problem_count: int
    leaves: int
    duration_s: float
    # The run as kept in `verifications` (kind, head, what it covered); None when
    # the archive could not be read at all.
    run: Verification | None = None
    # What the run said beside its problems (an acknowledged loss, a kept head the box
    # cannot write: archive/losses.py).
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.run.kind if self.run is not None else "full"

    @property
    def audit_action(self) -> str:
        return AUDIT_OK if self.ok else AUDIT_FAILED

    def audit_details(self) -> dict[str, object]:
        """What goes in the audit event: the verdict and the first problems, never content."""
        return {
            "ok": self.ok,
            "leaves": self.leaves,
            "problems": self.problem_count,
            "first_problems": list(self.problems[:5]),
            "periodic": True,
            "kind": self.kind,
            "records": self.run.records if self.run else 0,
            "tree_size": self.run.tree_size if self.run else 0,
        }


def check_archive(
    archive: Archive, clock: Callable[[], float] = time.time, mode: Mode = "full"
) -> IntegrityStatus:
    """Verify the archive on a fresh reader connection (blocking: run it in a thread)."""
    started = time.monotonic()
    checked_at = clock()
    problems: list[str]
    notes: list[str] = []
    leaves = 0
    run: Verification | None = None
    try:
        conn = archive.reader()
    except (ArchiveError, sqlcipher3.DatabaseError) as exc:
        # The file header or first page is damaged: nothing else can be read.
        problems = [f"database file: cannot be opened ({exc})"]
    else:
        try:
            conn.execute("BEGIN")  # one snapshot for the whole check
            report, run = run_verification(archive, mode, clock, conn=conn)
            problems, notes = list(report.problems), list(report.notes)
            leaves = report.leaves
        except (ArchiveError, sqlcipher3.DatabaseError) as exc:
            problems = [f"database file: unreadable ({exc})"]
        finally:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlcipher3.DatabaseError:
                log.warning("integrity check: could not end its read transaction")
            conn.close()
    return IntegrityStatus(
        checked_at=checked_at,
        ok=not problems,
        problems=tuple(problems[:MAX_PROBLEMS_KEPT]),
        problem_count=len(problems),
        leaves=leaves,
        duration_s=time.monotonic() - started,
        run=run,
        notes=tuple(notes),
    )


def damaged_at_open(
    exc: BaseException, storage: Path, clock: Callable[[], float] = time.time
) -> IntegrityStatus | None:
    """The status to show when unlocking failed because the file is damaged.

    Such a box cannot serve anything: the panel must say "integrity failure",
    not merely "locked", so that someone restores from a backup. A file another
    program holds locked, a full disk, a read-only or unreachable file is not
    damage (archive/open_failure.py): None, and the panel shows an error instead.
    """
    failure = classify_open_failure(exc, storage)
    if failure is None or not failure.damaged:
        return None
    problem = f"database file: cannot be opened ({failure.cause}); restore from a backup"
    return IntegrityStatus(clock(), False, (problem,), 1, 0, 0.0)


def scheduled_run_since(archive: Archive, since_ms: int) -> bool:
    """A scheduled verify (the nightly timer's, or this box's own) started at or after
    `since_ms`: the 24-hour check then has nothing to add (docs/operations.md)."""
    conn = archive.reader()
    try:
        row = conn.execute(
            "SELECT 1 FROM verifications WHERE purpose = 'scheduled' AND started_at >= ? LIMIT 1",
            (since_ms,),
        ).fetchone()
    finally:
        conn.close()
    return row is not None


async def run_periodically(
    check: Callable[[], Awaitable[object]],
    interval_s: Callable[[], float],
) -> None:
    """Call `check` every `interval_s()` seconds, forever (cancel the task to stop).

    The first check waits one interval: the box has just been unlocked and a
    full verify at boot would only delay phones. A failing check is logged and
    the schedule continues.
    """
    while True:
        await asyncio.sleep(interval_s())
        try:
            await check()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the periodic integrity check failed to run")


__all__ = [
    "AUDIT_FAILED",
    "AUDIT_OK",
    "DEFAULT_INTERVAL_S",
    "IntegrityStatus",
    "check_archive",
    "damaged_at_open",
    "run_periodically",
    "scheduled_run_since",
]
