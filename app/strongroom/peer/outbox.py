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

Seal = Callable[[SecureChannel], list[bytes]]

Write = Callable[[bytes], Awaitable[None]]


class Outbox:
    def __init__(self, channel: SecureChannel, write: Write) -> None:
        self._channel = channel
        self._write = write
        # Nonces are implicit: sealing and writing happen under one lock, so the
        # order on the wire is the order of encryption.
        self._lock = asyncio.Lock()
        self._queued: list[bytes] = []
        # Resolves once the frames queued so far are written: every sender waits
        # for its own frame, so a peer that stops reading stops the senders too
        # (back-pressure) instead of letting frames pile up here.
        self._written: asyncio.Future[None] | None = None
        self.bundling = False
        # Set when messages of a sealed batch were never written (a write failed or
        # was cancelled): the phone would open nothing sent after that.
        self._broken = False

    async def send(self, frame: bytes) -> None:
        """Send one encoded frame; return once it is written. Raises what `write` raises."""
        if self._broken:
            raise ConnectionResetError("the channel lost messages it had sealed")
        if not self.bundling:
            async with self._lock:
                for message in self._channel.seal(frame):
                    await self._write(message)
            return
        self._queued.append(frame)
        if self._written is not None:
            # Another sender writes this frame with its own; wait for that write.
            await asyncio.shield(self._written)
            return
        written = self._written = asyncio.get_running_loop().create_future()
        try:
            await asyncio.sleep(0)  # one loop turn: let the frames ready now join
            async with self._lock:
                frames, self._queued = self._queued, []
                self._written = None
                for message in self._channel.seal_many(frames):
                    await self._write(message)
        except BaseException as exc:
            if self._written is written:  # cancelled before taking the frames
                self._written = None
            if not written.done():
                failure = exc if isinstance(exc, Exception) else ConnectionResetError("cancelled")
                written.set_exception(failure)
                written.exception()  # retrieved here: the waiters may all be gone
            raise
        written.set_result(None)

    async def send_sealed(self, seal: Seal) -> None:
        """Write the transport messages `seal(channel)` returns, sealed under the lock
        (a batch of large frames built around their bytes: peer/blob_sender.py)."""
        if self._broken:
            raise ConnectionResetError("the channel lost messages it had sealed")
        async with self._lock:
            messages = seal(self._channel)
            try:
                for message in messages:
                    await self._write(message)
            except BaseException:
                self._broken = True  # a message left unwritten: the next would not open
                raise
