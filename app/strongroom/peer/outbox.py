"""Sending frames over a SecureChannel, in order, bundled when the peer allows.

Both ends use it (the box per connection, the reference client per link).
`queue` puts a frame in line at once (its place on the wire is fixed by that
call, so a caller can keep frames in an order of its own without a lock held
across the write) and returns a future for its write. Frames queued during the
same turn of the event loop (the acks of one group commit, a phone's burst of
pushes) leave together: one flush task per turn seals everything queued by then
into as few transport messages as `SecureChannel.seal_many` allows. Until the
peer has announced "bundles" in its hello, every frame is sealed and sent on
its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from strongroom.peer.channel import SecureChannel

Write = Callable[[bytes], Awaitable[None]]
Seal = Callable[[SecureChannel], Iterable[bytes | bytearray]]


class ReservedWrite(Protocol):
    """Writes a message sealed after `room` free bytes (peer/ws_send.FrameWriter)."""

    room: int

    def __call__(self, buf: bytearray) -> Awaitable[None]: ...


class Outbox:
    def __init__(
        self, channel: SecureChannel, write: Write, reserved: ReservedWrite | None = None
    ) -> None:
        self._channel = channel
        self._write = write
        # With `reserved`, every message (queued frames' and `send_sealed`'s) is
        # sealed after `room` free bytes, where it puts its frame header.
        self._reserved = reserved
        self.room = reserved.room if reserved is not None else 0
        # Nonces are implicit: flushes seal and write under one lock, in the order
        # they were started, so the order on the wire is the order of encryption.
        self._lock = asyncio.Lock()
        self._queued: list[bytes] = []
        # Resolves once the frames queued so far are written: every sender waits
        # for its own frame, so a peer that stops reading stops the senders too
        # (back-pressure) instead of letting frames pile up here.
        self._written: asyncio.Future[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()
        self.bundling = False
        # Set when messages of a sealed batch were never written (a write failed or
        # was cancelled): the phone would open nothing sent after that.
        self._broken = False

    def queue(self, frame: bytes) -> asyncio.Future[None]:
        """Put one encoded frame in line now; the future resolves once it is written
        (or fails with what `write` raised). Await it through `asyncio.shield` if the
        waiter may be cancelled: the frame leaves anyway."""
        if self._broken:
            lost = asyncio.get_running_loop().create_future()
            lost.set_exception(ConnectionResetError("the channel lost messages it had sealed"))
            return lost
        self._queued.append(frame)
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            # Starts on the next loop turn: the frames queued by then join this one.
            flush = loop.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        return self._written

    async def send(self, frame: bytes) -> None:
        """Send one encoded frame; return once it is written. Raises what `write` raises."""
        await asyncio.shield(self.queue(frame))

    async def _flush(self) -> None:
        async with self._lock:
            frames, self._queued = self._queued, []
            written, self._written = self._written, None
            assert written is not None
            try:
                if self._reserved is not None:
                    # Each message with its WebSocket header in one write (the box).
                    await self._write_reserved(self._reserved, frames)
                else:
                    if self.bundling:
                        messages = self._channel.seal_many(frames)
                    else:
                        messages = [m for frame in frames for m in self._channel.seal(frame)]
                    for message in messages:
                        await self._write(message)
            except BaseException as exc:
                self._broken = True  # a sealed message left unwritten: the next would not open
                failure = exc if isinstance(exc, Exception) else ConnectionResetError("cancelled")
                written.set_exception(failure)
                written.exception()  # retrieved here: the waiters may all be gone
                if not isinstance(exc, Exception):
                    raise
                return
            written.set_result(None)

    async def _write_reserved(self, write: ReservedWrite, frames: list[bytes]) -> None:
        room = write.room
        if self.bundling:
            buffers = self._channel.seal_many_into(frames, room)
        else:
            buffers = [b for frame in frames for b in self._channel.seal_parts_into([frame], room)]
        for buf in buffers:
            await write(buf)

    async def send_sealed(self, seal: Seal) -> None:
        """Write the transport messages `seal(channel)` gives, sealed under the lock
        (a batch of large frames built around their bytes: peer/blob_sender.py); an
        iterator is sealed one message at a time, each written before the next is
        sealed. Frames queued before it leave before it. With `room`, each message
        is a bytearray whose first `room` bytes are free for the reserved writer."""
        if self._broken:
            raise ConnectionResetError("the channel lost messages it had sealed")
        if self._written is not None:
            await asyncio.shield(self._written)
        write = self._reserved or self._write
        async with self._lock:
            try:
                for message in seal(self._channel):
                    await write(message)  # type: ignore[arg-type]
            except BaseException:
                self._broken = True  # a message left unwritten: the next would not open
                raise
