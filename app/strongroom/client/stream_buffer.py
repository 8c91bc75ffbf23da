"""The frames of one streamed reply (blob_data) that its reader has not taken yet.

Bounded, with back-pressure instead of dropping: when the buffer is full, the
link's socket reader waits in `put` for room, so it stops reading the socket
and TCP slows the box down. A box streaming a large blob to a slow consumer
can therefore not make the phone buffer more than `limit` frames.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")

STREAM_FRAMES = 16  # blob_data frames of at most 64 KiB: about 1 MiB per download


class StreamBuffer(Generic[Item]):
    def __init__(self, limit: int = STREAM_FRAMES) -> None:
        if limit < 1:
            raise ValueError("a stream buffer holds at least one frame")
        self._items: deque[Item] = deque()
        self._limit = limit
        self._room = asyncio.Event()
        self._room.set()
        self._ready = asyncio.Event()
        self._ended = False  # no more items will come (the connection closed)
        self._abandoned = False  # nobody reads any more: items are dropped

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Item) -> None:
        """Add an item; wait while the buffer is full (the reader's back-pressure)."""
        while len(self._items) >= self._limit and not self._abandoned:
            self._room.clear()
            await self._room.wait()
        if self._abandoned or self._ended:
            return
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Item | None:
        """The next item, in order; None once the buffer is empty and ended."""
        while not self._items:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        self._room.set()
        return item

    def end(self) -> None:
        """No more items will come; the reader still gets those already here."""
        self._ended = True
        self._ready.set()

    def abandon(self) -> None:
        """The reader went away: drop what is here and never make a writer wait again."""
        self._abandoned = True
        self._items.clear()
        self._room.set()
