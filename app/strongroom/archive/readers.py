"""Reader connections opened once and reused: web pages and phone history share them.

SQLCipher connections are cheap to open with the raw key, but not free (and
each has its own page cache); a small pool keeps a few warm. Each connection
is used by one worker thread at a time, so queries never block the event loop.

A cancelled caller (a phone that hung up, a stopping box) must not hand its
connection back while the worker thread still runs the query on it: closing
a SQLite connection under a running statement crashes the process. So the
thread is shielded, and the connection returns to the pool (or is closed, if
the pool was closed meanwhile) only when the query has really finished.
"""

from __future__ import annotations

import asyncio
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
        self._closed = False

    async def run(self, query: Callable[[Connection], T]) -> T:
        """Run `query` on a pooled reader connection in a worker thread."""
        async with self._slots:
            if self._closed:
                raise ArchiveClosed("the archive is closing")
            conn = self._free.pop() if self._free else await asyncio.to_thread(self._archive.reader)
            work = asyncio.ensure_future(asyncio.to_thread(query, conn))
            try:
                return await asyncio.shield(work)
            finally:
                if work.done():
                    self._release(conn)
                else:
                    work.add_done_callback(lambda _done: self._release(conn))

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
