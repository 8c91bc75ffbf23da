"""Reader connections opened once and reused: web pages and phone history share them.

SQLCipher connections are cheap to open with the raw key, but not free (and
each has its own page cache); a small pool keeps a few warm. Each connection
is used by one worker thread at a time, so queries never block the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from strongroom.archive.db import Connection
from strongroom.archive.store import Archive

T = TypeVar("T")

DEFAULT_READERS = 4


class ReaderPool:
    def __init__(self, archive: Archive, size: int = DEFAULT_READERS) -> None:
        self._archive = archive
        self._free: list[Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def run(self, query: Callable[[Connection], T]) -> T:
        """Run `query` on a pooled reader connection in a worker thread."""
        async with self._slots:
            conn = self._free.pop() if self._free else await asyncio.to_thread(self._archive.reader)
            try:
                return await asyncio.to_thread(query, conn)
            finally:
                self._free.append(conn)

    def close(self) -> None:
        for conn in self._free:
            conn.close()
        self._free.clear()
