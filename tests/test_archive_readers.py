"""The shared reader pool: connections reused, and never closed under a running query."""

from __future__ import annotations

import asyncio
import threading

import pytest

from strongroom.archive.errors import ArchiveClosed
from strongroom.archive.readers import ReaderPool
from strongroom.archive.store import Archive


class SlowQuery:
    """A query that holds its connection until released, then reads the log size."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()
        self.finished: list[int] = []

    def __call__(self, conn):  # type: ignore[no-untyped-def]
        self.started.set()
        self.release.wait(5)
        self.finished.append(conn.execute("SELECT count(*) FROM log_leaves").fetchone()[0])
        return self.finished[-1]

    async def wait_finished(self) -> None:
        for _ in range(100):
            if self.finished:
                return
            await asyncio.sleep(0.02)


async def test_connections_are_reused_not_reopened(archive: Archive) -> None:
    pool = ReaderPool(archive, size=2)
    seen = [await pool.run(id) for _ in range(10)]
    assert len(set(seen)) == 1  # one connection served ten sequential queries
    pool.close()


async def test_a_cancelled_caller_does_not_return_a_busy_connection(archive: Archive) -> None:
    pool = ReaderPool(archive, size=1)
    slow = SlowQuery()

    caller = asyncio.create_task(pool.run(slow))
    await asyncio.to_thread(slow.started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The box stops now, while the worker thread still holds the connection.
    pool.close()
    slow.release.set()
    await slow.wait_finished()
    assert slow.finished == [archive.log.size]  # the query ran to the end on an open connection
    with pytest.raises(ArchiveClosed):
        await pool.run(id)


async def test_a_loop_shutdown_cancelling_every_task_never_closes_a_busy_connection(
    archive: Archive,
) -> None:
    # asyncio.run (and pytest's loop teardown) cancels every task left at shutdown.
    # A query tracked by an asyncio task looked finished then, and its connection was
    # closed under the running thread: a segfault, once in about 40 test runs.
    pool = ReaderPool(archive, size=1)
    slow = SlowQuery()

    caller = asyncio.create_task(pool.run(slow))
    await asyncio.to_thread(slow.started.wait, 5)
    pool.close()  # the box stops...
    for task in asyncio.all_tasks():  # ...and the loop shuts down
        if task is not asyncio.current_task():
            task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0.05)  # every cancellation has run
    slow.release.set()
    await slow.wait_finished()
    assert slow.finished == [archive.log.size]  # the query ran to the end on an open connection
