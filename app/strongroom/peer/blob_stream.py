"""A connection's blob streams: the attachments a phone asks for (blob_get), sent.

Decryption starts at the chunk holding the asked offset, so a resumed download
costs only what remains; a worker thread reads the next batch while this one is
sealed and written (peer/blob_sender.py). At most MAX_BLOB_STREAMS run at once per
connection: each holds up to two ~1 MiB batches, and without a cap one phone's
max_in_flight blob_gets could hold ~128 MiB of the box; the others wait their turn.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from strongroom import malloc_tuning
from strongroom.archive.blobs import BlobLocation, BlobStore
from strongroom.archive.errors import BlobError
from strongroom.peer.blob_sender import Batch, BlobFrames, read_batch
from strongroom.peer.frames import ErrorCode, Frame, error_frame
from strongroom.peer.outbox import Outbox
from strongroom.peer.ws_send import CONNECTION_GONE

log = logging.getLogger(__name__)

# Blob streams one connection runs at once (protocol.md §9): the reference phone
# asks for 2; the rest of a phone's blob_gets wait, they are not refused.
MAX_BLOB_STREAMS = 4


class BlobStreams:
    """The StreamBlob actions of one connection, MAX_BLOB_STREAMS at a time."""

    def __init__(
        self,
        blobs: BlobStore,
        outbox: Outbox,
        send: Callable[[Frame], Awaitable[None]],
        closed: Callable[[], bool],
        gone: Callable[[], None],
    ) -> None:
        self._blobs = blobs
        self._outbox = outbox
        self._send = send  # the connection's: an error frame in its place in line
        self._closed = closed
        self._gone = gone  # a send found the connection gone
        self._slots = asyncio.Semaphore(MAX_BLOB_STREAMS)

    async def stream(self, request_id: int, location: BlobLocation, size: int, offset: int) -> None:
        async with self._slots:
            # Freed batches are kept for the next ones while streams run (malloc_tuning).
            with malloc_tuning.streaming():
                await self._stream_batches(request_id, location, size, offset)

    async def _stream_batches(
        self, request_id: int, location: BlobLocation, size: int, offset: int
    ) -> None:
        chunks = self._blobs.read_chunks(location, size, offset)
        frames = BlobFrames(request_id, offset, self._outbox.room)
        ahead: asyncio.Future[Batch] | None = None
        try:
            batch = await asyncio.to_thread(read_batch, chunks)
            while not self._closed():
                if not batch.last:
                    ahead = asyncio.ensure_future(asyncio.to_thread(read_batch, chunks))
                    ahead.add_done_callback(_retrieved)
                await self._outbox.send_sealed(functools.partial(frames.seal, batch=batch))
                if ahead is None:
                    return
                batch, ahead = await ahead, None
        except BlobError as exc:
            log.error("blob stream failed: %s", exc)
            # The sibling `except` below does not cover this handler: a connection
            # gone while the error is sent must not escape as a failed action.
            try:
                await self._send(
                    error_frame(ErrorCode.INTERNAL, "the stored blob is damaged", request_id)
                )
            except CONNECTION_GONE:
                self._gone()
        except CONNECTION_GONE:
            self._gone()
        finally:
            if ahead is not None:
                ahead.cancel()


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A read-ahead the stream no longer awaits (closed, cancelled) may have failed."""
    if not future.cancelled():
        future.exception()
