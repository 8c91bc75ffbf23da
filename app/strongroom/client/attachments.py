"""Attachments of the reference client (protocol.md §9): resumable upload and download.

Upload: `blob_begin`, then `blob_chunk` frames from the offset the box returns
(what it had made durable), then `blob_end`; the ack is verified like a record's.
Download: `blob_get` from the size of a partial file, its SHA-256 checked and the
file fsynced once before it takes its final name (renamed durably). Neither holds
an attachment whole in memory when it comes from or goes to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from strongroom.client.link import BoxError, Link
from strongroom.client.proofs import Ack, AckVerifier, ProofError
from strongroom.durable import fsync_dir
from strongroom.peer.frames import BLOB_PIECE_BYTES, Frame

Progress = Callable[[int, int], None]
WRITE_PIECES = 16  # blob_data pieces (~64 KiB each) hashed and written together


async def upload(
    link: Link, verifier: AckVerifier, source: Path | bytes, progress: Progress | None
) -> Ack:
    """Upload an attachment's bytes, resuming where the box's durable copy stops.

    `progress(offset, size)` is called first with the offset the upload resumes
    from, then after every piece. Push the attachment record after this returns.
    """
    sha256, size = await asyncio.to_thread(_digest, source)
    reply = await link.request("blob_begin", {"sha256": sha256, "size": size})
    if reply.type == "ack":  # the box already holds this blob
        return verifier.verify(reply.body, kind="blob", leaf_kind="blob", ref=sha256)
    offset = int(reply.body["offset"])
    if progress is not None:
        progress(offset, size)
    chunk_id, failure = link.watch()
    try:
        for piece in _pieces(source, offset):
            if failure.done():
                await failure  # raises the box's error
            await link.send(Frame("blob_chunk", chunk_id, {"offset": offset, "data": piece}))
            offset += len(piece)
            if progress is not None:
                progress(offset, size)
        end = await link.request("blob_end", {"sha256": sha256})
    finally:
        link.unwatch(chunk_id)
    return verifier.verify(end.body, kind="blob", leaf_kind="blob", ref=sha256)


async def download(link: Link, sha256: bytes, dest: Path | None) -> bytes:
    """Download an attachment of this owner; verify its hash; optionally write `dest`.

    Returns the bytes when `dest` is None, else b"" (the file holds them). With
    `dest`, bytes go to `<dest>.partial` first and the file appears only once its
    hash is verified; a download cut off (dropped link, app killed) resumes from
    the partial file's size: the box streams only what is missing.
    """
    partial = dest.with_name(dest.name + ".partial") if dest is not None else None
    try:
        return await _download(link, sha256, partial, dest)
    except BoxError as exc:
        if partial is None or exc.code != "bad-offset":
            raise
        # The partial file is longer than the blob (not this blob's): start over.
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        return await _download(link, sha256, partial, dest)


async def _download(link: Link, sha256: bytes, partial: Path | None, dest: Path | None) -> bytes:
    digest = hashlib.sha256()
    parts: list[bytes | memoryview] = []  # views of the decrypted frames: not copied
    offset = 0
    if partial is not None:
        offset = await asyncio.to_thread(_hash_partial, partial, digest)
    # Unbuffered: each batch goes to the kernel in one writev of its pieces.
    handle = partial.open("ab", buffering=0) if partial is not None else None
    frames = link.stream("blob_get", {"sha256": sha256, "offset": offset})
    try:
        # The link buffers only a few frames of the stream (back-pressure on the box);
        # aclosing releases the stream as soon as this loop ends, even on an error.
        async with contextlib.aclosing(frames):
            async for frame in frames:
                if frame.body["offset"] != offset:
                    raise ProofError("the box sent the attachment's bytes out of order")
                data: bytes | memoryview = frame.body["data"]
                offset += len(data)
                parts.append(data)
                if handle is None:
                    digest.update(data)
                elif frame.body["end"]:
                    # The last batch is fsynced with the file (once per file, not per
                    # batch), on a worker thread: the loop does not wait for the disk.
                    await _to_thread_to_its_end(_write_flushed, handle, digest, parts, True)
                    parts = []
                elif len(parts) >= WRITE_PIECES:
                    # Hashed and written to the page cache here, on the loop, about
                    # 1 MiB at a time (~1 ms). A worker-thread hop per batch cost more
                    # CPU than it saved (thread wake-ups, the GIL handed back and forth,
                    # the batch's bytes crossing cores): ~10 % of the phone's CPU per
                    # MiB, for no more MiB/s on two cores (measured, docs/benchmarks.md).
                    _write_flushed(handle, digest, parts, False)
                    parts = []
                if frame.body["end"]:
                    break
    finally:
        if handle is not None:  # a cut-off download resumes after its last written batch
            handle.close()
    if digest.digest() != sha256:
        if partial is not None:
            await asyncio.to_thread(partial.unlink, missing_ok=True)  # start over next time
        raise ProofError("the downloaded attachment does not match its hash")
    if partial is not None and dest is not None:
        # The file's bytes are on disk (fsynced above) before it takes its final name,
        # and the name is made durable: after a crash a file under its final name is
        # whole, and restore_to, which skips the files it finds, never keeps a torn one.
        await asyncio.to_thread(_rename_durably, partial, dest)
    return b"".join(parts)


async def _to_thread_to_its_end(work: Callable[..., None], *args: Any) -> None:
    """`work(*args)` on a worker thread, awaited to its end even when cancelled.

    A thread cannot be stopped: a download cancelled while its last batch is written
    and fsynced would otherwise close the file under the worker (review L4: the
    fsync then hits a closed descriptor, or one already reused by the next file).
    The cancellation is raised once the worker is done with the file.
    """
    worker = asyncio.ensure_future(asyncio.to_thread(work, *args))
    try:
        await asyncio.shield(worker)
    except asyncio.CancelledError:
        while not worker.done():
            with contextlib.suppress(asyncio.CancelledError):  # cancelled again: still wait
                await asyncio.wait([worker])
        if not worker.cancelled():
            worker.exception()  # retrieved: the download is cancelled, its failure moot
        raise


def _hash_into(path: Path, digest: Any) -> int:
    """Feed a file to `digest` in 1 MiB blocks; return its size."""
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size


def _hash_partial(path: Path, digest: Any) -> int:
    """An earlier cut-off download's bytes into `digest`; its size, 0 if there is none."""
    try:
        return _hash_into(path, digest)
    except FileNotFoundError:
        return 0


def _write_flushed(
    handle: Any, digest: Any, pieces: list[bytes | memoryview], durable: bool
) -> None:
    # Written per batch: what a killed app leaves behind is what a resume counts on
    # (it re-hashes the partial file, so a batch cut short costs only its bytes).
    # One writev per batch, not one write per piece; the pieces are not joined first
    # (that was a copy of every byte on the phone's loop).
    for piece in pieces:
        digest.update(piece)
    _write_all(handle.fileno(), pieces)
    if durable:
        os.fsync(handle.fileno())
    elif hasattr(os, "posix_fadvise"):
        # Start writing this batch to disk now (and let the page cache drop the one
        # before, written by now): the fsync at the end of the file then waits for
        # little more than the last batch, instead of the whole file.
        end = handle.tell()
        start = max(0, end - 2 * sum(len(piece) for piece in pieces))
        os.posix_fadvise(handle.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)


def _write_all(fd: int, pieces: list[bytes | memoryview]) -> None:
    """Write `pieces` in order, as few system calls as the kernel allows (a short
    write, rare on a file, goes on from where it stopped)."""
    views = [memoryview(piece) for piece in pieces if piece]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if written:
            views[0] = views[0][written:]


def _rename_durably(partial: Path, dest: Path) -> None:
    os.replace(partial, dest)
    fsync_dir(dest.parent)


def _digest(source: Path | bytes) -> tuple[bytes, int]:
    if isinstance(source, bytes):
        return hashlib.sha256(source).digest(), len(source)
    digest = hashlib.sha256()
    size = _hash_into(source, digest)
    return digest.digest(), size


def _pieces(source: Path | bytes, offset: int) -> Iterable[bytes]:
    if isinstance(source, bytes):
        for start in range(offset, len(source), BLOB_PIECE_BYTES):
            yield source[start : start + BLOB_PIECE_BYTES]
        return
    with source.open("rb") as handle:
        handle.seek(offset)
        while piece := handle.read(BLOB_PIECE_BYTES):
            yield piece
