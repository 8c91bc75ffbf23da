"""Blob uploads of one connection: the I/O behind the session's Upload* actions.

Bytes go straight from each blob_chunk frame into `BlobUpload` (encrypted in
64 KiB chunks on disk), in a worker thread, so an attachment is never held
whole in memory. An upload that stops (dropped link, box restart) keeps its
whole sealed chunks; `blob_begin` for the same hash resumes from there.
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
WRITE_QUEUE = 16  # pieces received but not yet on disk (1 MiB): the reader runs ahead this far


def _write_all(upload: BlobUpload, pieces: list[bytes]) -> None:
    for piece in pieces:
        upload.write(piece)


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
        # Pieces go to disk in a worker thread while the next ones are decrypted.
        self._pieces: asyncio.Queue[bytes | None] = asyncio.Queue(WRITE_QUEUE)
        self._writer: asyncio.Task[None] | None = None
        self._write_error: UploadFailed | None = None

    async def _evict(self) -> None:
        """Close this driver's connection and wait until its upload is put away."""
        await self._close_connection()
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
        self._upload, self._location = upload, location
        self._write_error = None
        self._pieces = asyncio.Queue(WRITE_QUEUE)
        self._writer = asyncio.create_task(self._write_pieces(upload, self._pieces))
        return UploadOpened(upload.offset)

    async def _write_pieces(self, upload: BlobUpload, pieces: asyncio.Queue[bytes | None]) -> None:
        done = False
        while not done:
            # Everything queued goes to the worker thread in one trip: a thread hop
            # per 64 KiB piece cost about as much as writing the piece.
            batch: list[bytes] = []
            item = await pieces.get()
            while item is not None:
                batch.append(item)
                if pieces.empty():
                    break
                item = pieces.get_nowait()
            done = item is None
            if self._write_error is not None or not batch:
                continue  # keep draining so the reader never blocks on a dead upload
            try:
                await asyncio.to_thread(_write_all, upload, batch)
            except (BlobError, OSError) as exc:
                self._write_error = UploadFailed(
                    ErrorCode.UNAVAILABLE, f"cannot store the bytes: {exc}"
                )

    async def _drain(self) -> None:
        """Wait until every queued piece is written (or failed)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await self._pieces.put(None)
            await writer

    async def write(self, data: bytes) -> UploadFailed | None:
        """Queue a piece for the disk; a failure of an earlier piece is reported here."""
        if self._upload is None or self._writer is None:
            return UploadFailed(ErrorCode.NO_UPLOAD, "no upload is open")
        if self._write_error is not None:
            failed = self._write_error
            await self.abort()
            return failed
        await self._pieces.put(data)
        return None

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
        await self._drain()
        upload, self._upload = self._upload, None
        if upload is None:
            return
        try:
            await asyncio.to_thread(upload.abort)
        except OSError:
            pass  # the next resume re-reads what is on disk and keeps what authenticates
        finally:
            self._release()
