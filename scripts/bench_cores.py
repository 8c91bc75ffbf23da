"""Pinning a benchmark's processes to cores, to model two machines on one.

A box and a phone are two machines. On this bench machine they share its cores,
so a figure where both ends burn CPU measures their sum against a ceiling of one
end alone. Pinning the box's process to one core and the phone's to another gives
each its own core, as a real box and phone have (the cores are still shared with
whatever else runs on the machine: the load is printed beside each figure).

Linux's sched_setaffinity(0, ...) pins the calling thread only (threads created
after inherit it), so a process that already runs threads (the box's committer,
asyncio's workers) is pinned thread by thread through /proc/self/task.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def usable_cores() -> list[int]:
    """The cores this process may run on, lowest first."""
    return sorted(os.sched_getaffinity(0))


def two_cores() -> tuple[int, int] | None:
    """(box core, phone core), or None on a machine with fewer than two usable cores."""
    cores = usable_cores()
    return (cores[0], cores[1]) if len(cores) >= 2 else None


def pin_process(cores: set[int]) -> None:
    """Pin every thread of this process (and the threads it starts later) to `cores`."""
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task), cores)


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """This process on `core` alone inside the block, back to its cores after."""
    before = os.sched_getaffinity(0)
    pin_process({core})
    try:
        yield
    finally:
        pin_process(before)


def current_cores() -> set[int]:
    """The cores this thread may run on now (a child checks its pinning)."""
    return os.sched_getaffinity(0)
