"""Waiting for something to happen, with a deadline, instead of sleeping and hoping.

Use an event when the code under test offers one; poll with these when the
change happens on a thread or in state that signals nothing (LED lines,
tables written by a background task, log records).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL_S = 0.01


async def until(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """Return as soon as `condition()` holds; fail after `timeout_s` naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        await asyncio.sleep(POLL_S)


def until_sync(condition: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    """`until` for code without an event loop (gpiozero's threads)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
        time.sleep(POLL_S)
