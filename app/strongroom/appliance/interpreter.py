"""Interpreter settings for the box process (set once, at start).

The box runs its event loop, the group committer and the signature checkers
as threads of one CPython process. The committer releases the GIL around
every SQLite statement (about ten per record) and the loop around every
libsodium call and socket write. Each release is a hand-over: with CPython's
default switch interval (5 ms), a thread that gave the GIL away can wait up
to 5 ms to get it back while another runs pure Python. Measured on a 2-core
dev machine: a group commit of 20 records takes ~6 ms alone, 26-42 ms (p50)
beside one busy pure-Python thread at 5 ms, 19 ms at 1 ms and 12-15 ms at
0.2 ms (0.05 ms is no better). A shorter interval bounds each wait; threads
only switch when one is actually waiting, so an idle box pays nothing for it.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.0002


def tune_for_box() -> None:
    """Apply the box's interpreter settings to this process."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
