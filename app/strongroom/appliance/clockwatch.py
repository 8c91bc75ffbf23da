"""Time you can trust: notice a clock that is earlier than what the box already signed.

A Raspberry Pi has no battery-backed clock. After a power cut it boots at the
time fake-hwclock saved (or 1970) and jumps when NTP answers; an administrator
may also set it by hand. The archive already refuses to date anything before
its newest signed tree head (tree_heads.batch_time_ms); this module makes the
problem visible:

- the high-water mark is the newest of: the newest signed head's time, and the
  latest clock reading seen while running;
- a reading earlier than it (by more than `TOLERANCE_S`) is a clock that went
  back: a box fault (dashboard, `systemctl status`), one audit event
  `clock.behind` per episode, and retention refuses to destroy;
- once the clock is past the mark again, the fault clears (`clock.ok`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from strongroom.archive.db import Connection
from strongroom.archive.store import latest_tree_head
from strongroom.box import Box

log = logging.getLogger(__name__)

TOLERANCE_S = 2.0
FAULT = "clock"
AUDIT_BEHIND = "clock.behind"
AUDIT_OK = "clock.ok"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class ClockChange:
    """A change of verdict, to audit: went back (behind=True) or caught up."""

    behind: bool
    clock_s: float
    mark_s: float

    @property
    def action(self) -> str:
        return AUDIT_BEHIND if self.behind else AUDIT_OK

    def details(self) -> dict[str, object]:
        return {"clock": _iso(self.clock_s), "newest_known": _iso(self.mark_s)}


class ClockWatch:
    """Compares each clock reading with the newest time the box has seen or signed."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.mark_s: float = 0.0
        self.behind = False

    def learn_from(self, conn: Connection) -> None:
        """Raise the mark to the newest signed tree head (at unlock, after restarts)."""
        head = latest_tree_head(conn)
        if head is not None:
            self.mark_s = max(self.mark_s, head.timestamp_ms / 1000)

    def check(self) -> ClockChange | None:
        """Read the clock; return the change of verdict if there is one."""
        now = self.clock()
        behind = now < self.mark_s - TOLERANCE_S
        if not behind:
            self.mark_s = max(self.mark_s, now)
        if behind == self.behind:
            return None
        self.behind = behind
        return ClockChange(behind, now, self.mark_s)

    def problem(self) -> str | None:
        """Why the clock cannot be trusted now, or None (the fault text, retention's refusal)."""
        if self.clock() >= self.mark_s - TOLERANCE_S:
            return None
        return (
            f"the clock reads {_iso(self.clock())}, earlier than {_iso(self.mark_s)} already"
            " recorded; check NTP (timedatectl) — retention destroys nothing until then"
        )

    async def watch(self, box: Box) -> bool:
        """Check now; on a change set or clear the box's clock fault and audit it.

        Returns True when the verdict changed (the caller refreshes what it shows).
        """
        change = self.check()
        if change is None:
            return False
        if change.behind:
            box.faults[FAULT] = self.problem() or "the clock went back"
            log.error("clock went back: %s", box.faults[FAULT])
        else:
            box.faults.pop(FAULT, None)
            log.warning("the clock is past the newest recorded time again")
        await box.audit("box", change.action, "clock", change.details())
        return True
