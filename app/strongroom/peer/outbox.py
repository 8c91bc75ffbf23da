"""Sending frames over a SecureChannel, in order, bundled when the peer allows.

Both ends use it (the box per connection, the reference client per link).
Frames sent during the same turn of the event loop (the acks of one group
commit, a phone's burst of pushes) leave together: the first sender waits one
loop turn, then seals everything queued by then into as few transport
messages as `SecureChannel.seal_many` allows. Until the peer has announced
"bundles" in its hello, every frame is sealed and sent on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from strongroom.peer.channel import SecureChannel

Write = Callable[[bytes], Awaitable[None]]


class Outbox:
    def __init__(self, channel: SecureChannel, write: Write) -> None:
        self._channel = channel
        self._write = write
        # Nonces are implicit: sealing and writing happen under one lock, so the
        # order on the wire is the order of encryption.
        self._lock = asyncio.Lock()
        self._queued: list[bytes] = []
        self._flush_pending = False
        self.bundling = False

    async def send(self, frame: bytes) -> None:
        """Send one encoded frame. Raises what `write` raises (to the sender that wrote)."""
        if not self.bundling:
            async with self._lock:
                for message in self._channel.seal(frame):
                    await self._write(message)
            return
        self._queued.append(frame)
        if self._flush_pending:
            return  # the sender that queued first sends this frame with its own
        self._flush_pending = True
        taken = False
        try:
            await asyncio.sleep(0)  # one loop turn: let the frames ready now join
            async with self._lock:
                frames, self._queued = self._queued, []
                self._flush_pending = False
                taken = True
                for message in self._channel.seal_many(frames):
                    await self._write(message)
        finally:
            if not taken:
                # Cancelled before sending: the next sender flushes what is queued.
                self._flush_pending = False
