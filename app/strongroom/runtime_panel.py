"""The running box's front panel and systemd status line: what the LEDs and
`systemctl status strongroom` say, from the runtime's state.

Functions of the `BoxRuntime` they serve (runtime.py keeps one-line methods).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strongroom.appliance.gpio import open_panel, pin_factory_for
from strongroom.appliance.health import read_health
from strongroom.archive.errors import SchemaTooNew
from strongroom.archive.open_failure import classify_open_failure
from strongroom.archive.scrub import SCRUB_PENDING_STATUS, pending_since_ms
from strongroom.box import CHECKPOINTER_FAULT, COMMITTER_FAULT
from strongroom.panel_link import panel_inputs
from strongroom.unlock import BoxPhase
from strongroom.web.i18n import translator
from strongroom.web.open_failure_text import open_failure_text, unopened_text
from strongroom_panel.state import derive_state

if TYPE_CHECKING:
    from strongroom.runtime import BoxRuntime

log = logging.getLogger(__name__)

PANEL_FAULT = "panel"


def start_panel(rt: BoxRuntime, loop: asyncio.AbstractEventLoop) -> None:
    try:
        factory = rt.pin_factory or pin_factory_for(rt.config)

        def from_panel_thread() -> None:
            # gpiozero calls back on its own thread; the pairing service lives on the loop.
            loop.call_soon_threadsafe(rt.press_pair, "button")

        rt.panel = open_panel(factory, from_panel_thread)
    except Exception as exc:  # the hardware edge: whatever lgpio/gpiozero raise
        # The box still works from the web UI, but nobody may think the
        # panel is fine: a fault on the dashboard and in systemctl status.
        log.error("front panel unavailable: %s", exc)
        rt.panel = None
        rt.box.faults[PANEL_FAULT] = f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class ArchiveProblem:
    """Why the last unlock could not open the archive, for the panel, the status line,
    /status and `strongroom status` (in English; the unlock page says it in the
    reader's language)."""

    kind: str  # an OpenFailureKind, or "schema_too_new" / "not_opened"
    cause: str  # an error's name, never its text (it may quote a path or the key)
    damaged: bool
    text: str


def open_problem(rt: BoxRuntime) -> ArchiveProblem | None:
    """Why the last unlock could not open the archive, while the box stays locked.

    Every failure is named: a migration step that failed and rolled back is not
    damage (no backup to restore), but a box that merely looks locked after a bad
    upgrade would leave the office manager guessing."""
    failure = rt.box.open_failure
    if failure is None or rt.box.phase is not BoxPhase.LOCKED:
        return None
    english = translator("en")
    problem = classify_open_failure(failure, rt.config.data_dir)
    if problem is not None:
        text = open_failure_text(problem, english)
        return ArchiveProblem(problem.kind.value, problem.cause, problem.damaged, text)
    kind = "schema_too_new" if isinstance(failure, SchemaTooNew) else "not_opened"
    return ArchiveProblem(kind, type(failure).__name__, False, unopened_text(failure, english))


def refresh_panel(rt: BoxRuntime) -> None:
    publish_status(rt)
    if rt.panel is None:
        return
    # Only a damaged file is an integrity failure (restore a backup); a locked,
    # full, read-only or unreachable one is an error the office manager puts right.
    problem = open_problem(rt)
    damaged = problem is not None and problem.damaged
    error = rt.error
    if error is None and problem is not None and not damaged:
        error = problem.text
    if error is None:  # the archive's writer died: nothing is archived until a restart
        error = rt.box.faults.get(COMMITTER_FAULT)
    if error is None:  # its checkpointer died: acks wait for checkpoints until a restart
        error = rt.box.faults.get(CHECKPOINTER_FAULT)
    try:
        disk = read_health(rt.config.data_dir).disk.percent
    except OSError:
        disk = 0.0
    inputs = panel_inputs(
        now=rt.clock(),
        phase=rt.box.phase,
        booting=rt.booting,
        pairing=rt.pairing.status(),
        disk_percent=disk,
        backup_running=False,
        integrity_ok=rt.integrity_ok and not damaged,
        error=error,
        job_failed=rt.night_jobs.failed,
    )
    rt.panel.show(derive_state(inputs))


def publish_status(rt: BoxRuntime) -> None:
    """The line `systemctl status strongroom` shows: phase, URL and failed night jobs."""
    line = f"{rt.box.phase.value} at {rt.url}"
    for name, why in sorted(rt.box.faults.items()):
        line += f" | {name} fault: {why}"
    if (problem := open_problem(rt)) is not None:
        line += f" | archive: {problem.text}"
    if failures := rt.night_jobs.status_line():
        line += f" | {failures}"
    if pending_since_ms(rt.config.archive_path) is not None:
        line += f" | {SCRUB_PENDING_STATUS}"
    if line != rt.status_line:
        rt.status_line = line
        rt.notifier.status(line)
