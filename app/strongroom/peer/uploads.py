"""Blob uploads of one connection: the I/O behind the session's Upload* actions.

Bytes go from the blob_chunk frames into `BlobUpload` (hashed, encrypted in
64 KiB chunks on disk) in a worker thread, about 512 KiB per trip, so an
attachment is never held whole in memory. An upload that stops (dropped link,
box restart) keeps its whole sealed chunks; `blob_begin` for the same hash
resumes from there.

Each hash is claimed by one driver at a time (`active`). The claim must be let go
whatever ends the upload: finish, abort, a connection that closes cleanly (aiohttp
then cancels its handler, see PeerService) or a newer connection of the same
device taking over. A claim left behind answers `busy` to that hash for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from strongroom.archive import writes
from strongroom.archive.blobs import BlobLocation, BlobUpload
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveError, BlobError, RecordRejected
from strongroom.archive.store import Archive
from strongroom.peer import history
from strongroom.peer.actions import BlobStored, UploadFailed, UploadOpened
from strongroom.peer.frames import ErrorCode

Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


EVICT_WAIT_S = 5.0
# Bytes handed to a worker thread per trip. A trip (wake a thread, get its result
# back on the loop) costs about as much as sealing a 64 KiB chunk, so pieces travel
# in batches. One batch is on its way to disk while the next one fills: about
# 1 MiB of an upload is in memory, never the attachment.
BATCH_BYTES = 512 * 1024


def _quiet(task: asyncio.Future[None]) -> None:
    """Done callback: a close that failed has nothing left to report."""
    if not task.cancelled():
        task.exception()


def _seal_and_append(upload: BlobUpload, pieces: list[bytes]) -> None:
    """Worker thread: hash and seal the pieces into chunks, then one write for them all."""
    sealed: list[bytes] = []
    for piece in pieces:
        sealed += upload.seal(piece)
    upload.append(sealed)


class UploadDriver:
    def __init__(
        self,
        archive: Archive,
        committer: GroupCommitter,
        read: Read,
        active: dict[bytes, UploadDriver],
        *,
        device: Callable[[], int | None],
        close_connection: Callable[[], Awaitable[None]],
    ) -> None:
        self._archive = archive
        self._committer = committer
        self._read = read
        self._active = active  # blob hash -> the driver uploading it, on any connection
        self._device = device
        self._close_connection = close_connection
        self._idle = asyncio.Event()
        self._idle.set()
        self._upload: BlobUpload | None = None
        self._sha256 = b""
        self._location: BlobLocation | None = None
        # The pieces that go to disk next, and the batch a worker thread is sealing
        # and writing meanwhile (batches go one at a time: chunks stay in order).
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._flight: asyncio.Future[None] | None = None
        self._write_error: UploadFailed | None = None
        # The claim-to-open step runs as a task of its own: a cancelled caller must
        # not leave a claim with no upload behind it (abort waits for this task).
        self._opening: asyncio.Task[BlobStored | UploadOpened | UploadFailed] | None = None

    async def _evict(self) -> None:
        """Ask this driver's connection to close and wait until its upload is put away.

        The close runs on its own: waiting for a dead phone's closing handshake
        must not hold the newer connection (the old reader stops at once anyway)."""
        closing = asyncio.ensure_future(self._close_connection())
        closing.add_done_callback(_quiet)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), EVICT_WAIT_S)

    def _release(self) -> None:
        if self._active.get(self._sha256) is self:
            del self._active[self._sha256]
        self._idle.set()

    async def open(self, sha256: bytes, size: int) -> BlobStored | UploadOpened | UploadFailed:
        await self.abort()
        if await self._read(lambda conn: history.stored_blob(conn, sha256)) is not None:
            return BlobStored()
        holder = self._active.get(sha256)
        if holder is not None and holder._device() == self._device():
            # The same phone reconnected before its old connection was noticed dead:
            # the new connection wins, and resumes from what the old one wrote.
            await holder._evict()
            holder = self._active.get(sha256)
        if holder is not None:
            return UploadFailed(ErrorCode.BUSY, "this blob is being uploaded on another connection")
        self._active[sha256] = self
        self._sha256 = sha256
        self._idle.clear()
        self._opening = asyncio.ensure_future(self._start(sha256, size))
        return await asyncio.shield(self._opening)

    async def _start(self, sha256: bytes, size: int) -> BlobStored | UploadOpened | UploadFailed:
        """Claim taken: register the upload and open its file (or let the claim go)."""
        try:
            location = self._archive.blobs.new_location()
            committed = await self._committer.submit(writes.begin_upload(sha256, size, location))
            location = committed.result
            start = self._archive.blobs.start_upload
            upload = await asyncio.to_thread(start, location, size, sha256)
        except RecordRejected as exc:
            self._release()
            return UploadFailed(ErrorCode.REJECTED, str(exc))
        except (ArchiveError, OSError) as exc:
            self._release()
            return UploadFailed(ErrorCode.UNAVAILABLE, f"cannot start the upload: {exc}")
        except BaseException:
            self._release()
            raise
        self._upload, self._location = upload, location
        self._write_error = None
        self._batch, self._batch_bytes = [], 0
        return UploadOpened(upload.offset)

    async def write(self, data: bytes) -> UploadFailed | None:
        """Take a piece for the disk; a failure of an earlier piece is reported here."""
        upload = self._upload
        if upload is None:
            return UploadFailed(ErrorCode.NO_UPLOAD, "no upload is open")
        if self._flight is not None and self._flight.done():
            await self._settle()  # collects an error without waiting
        if self._write_error is not None:
            failed = self._write_error
            await self.abort()
            return failed
        # Hashing and sealing happen in the worker thread, off the event loop.
        self._batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES:
            # Back-pressure: while the previous batch is still being written, the
            # session waits here, so it stops reading the phone's frames.
            await self._launch()
        return None

    async def _launch(self) -> None:
        """Hand the batch to a worker thread once the previous one is written."""
        await self._settle()
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        upload = self._upload
        if upload is None or self._write_error is not None or not batch:
            return  # a failed upload is aborted: its resume rereads what reached the disk
        loop = asyncio.get_running_loop()
        self._flight = loop.run_in_executor(None, _seal_and_append, upload, batch)

    async def _settle(self) -> None:
        """Wait for the batch in flight; remember its failure for the next write."""
        flight = self._flight
        if flight is None:
            return
        try:
            # Shielded: a cancelled caller must not leave the thread writing to a file
            # that abort() closes; the next _settle() waits for it again.
            await asyncio.shield(flight)
        except (BlobError, OSError) as exc:
            if self._write_error is None:
                self._write_error = UploadFailed(
                    ErrorCode.UNAVAILABLE, f"cannot store the bytes: {exc}"
                )
        self._flight = None

    async def _drain(self) -> None:
        """Write every piece taken so far (or fail)."""
        await self._launch()
        await self._settle()

    async def finish(self) -> BlobLocation | UploadFailed:
        upload, location = self._upload, self._location
        if upload is None or location is None:
            return UploadFailed(ErrorCode.NO_UPLOAD, "no upload is open")
        await self._drain()
        if self._write_error is not None:
            failed = self._write_error
            await self.abort()
            return failed
        self._upload = None
        try:
            await asyncio.to_thread(upload.finish)
            await asyncio.to_thread(self._archive.blobs.complete, upload, location)
        except BlobError as exc:
            return UploadFailed(ErrorCode.HASH_MISMATCH, str(exc))
        except OSError as exc:
            return UploadFailed(ErrorCode.UNAVAILABLE, f"cannot store the blob: {exc}")
        finally:
            self._release()
        return location

    async def abort(self) -> None:
        """Put the upload away (its sealed chunks stay for a resume); let the claim go."""
        opening, self._opening = self._opening, None
        if opening is not None:
            with contextlib.suppress(Exception):
                await opening  # an open still under way: abort what it opened
        try:
            await self._drain()
            upload, self._upload = self._upload, None
            if upload is not None:
                await asyncio.to_thread(upload.abort)
        except OSError:
            pass  # the next resume re-reads what is on disk and keeps what authenticates
        finally:
            self._release()
