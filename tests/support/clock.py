"""The one test clock: a callable returning seconds, which a test moves by hand.

`Clock(5000.0)` starts at a fixed time and moves only when told (`advance`, or
`clock.now = ...`): timers, windows and retention become exact. `Clock()`
follows the wall clock plus whatever `advance` added, for a whole box whose
sockets and threads need real time but whose two-minute windows a test must
not sleep through.
"""

from __future__ import annotations

import time

MS = 1000


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self._start = now  # None: the wall clock
        self._offset = 0.0

    def _base(self) -> float:
        return time.time() if self._start is None else self._start

    @property
    def now(self) -> float:
        return self._base() + self._offset

    @now.setter
    def now(self, value: float) -> None:
        self._offset = value - self._base()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def now_ms(self) -> int:
        return int(self.now * MS)
