"""What the box is doing, reduced to the one state the front panel shows.

The box fills a `PanelInputs` snapshot from its own facts; `derive_state` is a
pure function of that snapshot, so the priority order below is testable without
any hardware and is the single place where it is decided.

Priority (first match wins), and why:

1. INTEGRITY_FAILURE  the archive or the log does not verify: nothing else the
                      box says can be trusted, so this hides everything.
2. ERROR              the service is broken (e.g. the archive cannot be opened).
3. BOOTING            the service has not finished starting.
4. UPDATING           the archive is being migrated after an upgrade (minutes
                      on a Pi): the box works hard and must not look stuck or
                      locked (a pulled plug is harmless, but starts it again).
5. LOCKED             the archive keys are not loaded (first run, or waiting for
                      the 24 words after a restore): nothing else is possible yet.
6. OVERLAP            two devices tried to pair in one window and both were
                      refused: the person at the box must see that now.
7. PAIRED_OK          a device paired in the last `RESULT_SHOWN_FOR_S` seconds.
8. PAIRING_OPEN       the pairing window is open (someone just pressed PAIR).
9. JOB_FAILED         a night job (backup, retention, verify) failed: nobody is
                      at the box at night, so the fault stays until the job
                      succeeds; below the pairing states for the same reason.
10. DISK_NEARLY_FULL  persistent warning; below the pairing states because those
                      answer a person standing at the box right now.
11. BACKUP_RUNNING    informational.
12. READY             everything is fine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# How long a pairing result (success or overlap) stays on the panel.
RESULT_SHOWN_FOR_S = 10.0
# Disk usage (percent of the data filesystem) from which the panel warns.
DISK_NEARLY_FULL_PERCENT = 90.0


class BoxState(enum.Enum):
    """The states the front panel can show, one at a time."""

    BOOTING = "booting"
    UPDATING = "updating"
    LOCKED = "locked"
    READY = "ready"
    PAIRING_OPEN = "pairing_open"
    PAIRED_OK = "paired_ok"
    OVERLAP = "overlap"
    ERROR = "error"
    DISK_NEARLY_FULL = "disk_nearly_full"
    BACKUP_RUNNING = "backup_running"
    INTEGRITY_FAILURE = "integrity_failure"
    JOB_FAILED = "job_failed"


class PairingResult(enum.Enum):
    """How the last pairing window ended."""

    PAIRED = "paired"
    OVERLAP = "overlap"


@dataclass(frozen=True)
class PanelInputs:
    """A snapshot of the facts the panel depends on.

    `now` and `last_pairing_at` are on the same monotonic clock (seconds); the
    snapshot carries `now` so that `derive_state` stays pure.
    """

    now: float
    booting: bool = False
    updating: bool = False  # a schema migration is running (locked is true as well)
    locked: bool = False
    pairing_window_open: bool = False
    pairing_seconds_left: float = 0.0
    last_pairing_result: PairingResult | None = None
    last_pairing_at: float | None = None
    overlap: bool = False
    error: str | None = None
    disk_percent: float = 0.0
    backup_running: bool = False
    integrity_ok: bool = True
    job_failed: bool = False


def _recent_result(inputs: PanelInputs) -> PairingResult | None:
    if inputs.last_pairing_result is None or inputs.last_pairing_at is None:
        return None
    age = inputs.now - inputs.last_pairing_at
    if 0.0 <= age < RESULT_SHOWN_FOR_S:
        return inputs.last_pairing_result
    return None


def derive_state(inputs: PanelInputs) -> BoxState:
    """Return the one state to show, following the priority order in the module doc."""
    if not inputs.integrity_ok:
        return BoxState.INTEGRITY_FAILURE
    if inputs.error is not None:
        return BoxState.ERROR
    if inputs.booting:
        return BoxState.BOOTING
    if inputs.updating:
        return BoxState.UPDATING
    if inputs.locked:
        return BoxState.LOCKED
    recent = _recent_result(inputs)
    if inputs.overlap or recent is PairingResult.OVERLAP:
        return BoxState.OVERLAP
    if recent is PairingResult.PAIRED:
        return BoxState.PAIRED_OK
    # A window whose countdown reached zero is closed, whatever the flag says:
    # the flag may lag behind the timer by one refresh.
    if inputs.pairing_window_open and inputs.pairing_seconds_left > 0.0:
        return BoxState.PAIRING_OPEN
    if inputs.job_failed:
        return BoxState.JOB_FAILED
    if inputs.disk_percent >= DISK_NEARLY_FULL_PERCENT:
        return BoxState.DISK_NEARLY_FULL
    if inputs.backup_running:
        return BoxState.BACKUP_RUNNING
    return BoxState.READY
