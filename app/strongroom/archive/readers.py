"""Reader connections opened once and reused: web pages and phone history share them.

SQLCipher connections are cheap to open with the raw key, but not free (and
each has its own page cache); a small pool keeps a few warm. Each connection
is used by one worker thread at a time, so queries never block the event loop.

A cancelled caller (a phone that hung up, a stopping box) must not hand its
connection back while the worker thread still runs the query on it: closing
a SQLite connection under a running statement crashes the process. So the
connection goes back to the pool (or is closed, if the pool was closed
meanwhile) from the thread pool's own completion callback, which fires when
the query has really finished. (Tracking it through an asyncio task was not
enough: when a test's or the service's event loop shuts down it cancels every
task, the task ended at once while the thread still ran, and the connection
was closed under the query: a segfault seen about once in 40 test runs.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveClosed
from strongroom.archive.store import Archive

T = TypeVar("T")

DEFAULT_READERS = 4


class ReaderPool:
    def __init__(self, archive: Archive, size: int = DEFAULT_READERS) -> None:
        self._archive = archive
        self._free: list[Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._threads = concurrent.futures.ThreadPoolExecutor(
            size, thread_name_prefix="archive-reader"
        )
        self._closed = False

    async def run(self, query: Callable[[Connection], T]) -> T:
        """Run `query` on a pooled reader connection in a worker thread."""
        async with self._slots:
            if self._closed:
                raise ArchiveClosed("the archive is closing")
            loop = asyncio.get_running_loop()
            conn = self._free.pop() if self._free else await self._open(loop)
            if self._closed:  # closed while the connection was being opened
                conn.close()
                raise ArchiveClosed("the archive is closing")
            work = self._threads.submit(query, conn)
            # Runs in the worker thread (or here, if already done) once the query ends.
            work.add_done_callback(lambda _work: self._hand_back(loop, conn))
            return await asyncio.shield(asyncio.wrap_future(work, loop=loop))

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Connection:
        opening = self._threads.submit(self._archive.reader)
        try:
            return await asyncio.shield(asyncio.wrap_future(opening, loop=loop))
        except asyncio.CancelledError:
            # Nobody will use the connection being opened: close it once it exists.
            opening.add_done_callback(_close_opened)
            raise

    def _hand_back(self, loop: asyncio.AbstractEventLoop, conn: Connection) -> None:
        try:
            loop.call_soon_threadsafe(self._release, conn)
        except RuntimeError:  # the loop is gone: nobody can reuse it
            conn.close()

    def _release(self, conn: Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._free.append(conn)

    def close(self) -> None:
        """Close idle connections now; busy ones are closed when their query ends."""
        self._closed = True
        for conn in self._free:
            conn.close()
        self._free.clear()
        self._threads.shutdown(wait=False)


def _close_opened(opening: concurrent.futures.Future[Connection]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()
