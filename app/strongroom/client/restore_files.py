"""Downloading every attachment a restored history names (protocol.md §8, §9).

Two files are in flight at once (`WINDOW` `blob_get` streams on the one
link, each frame carrying its request's id): one file fetched at a time left
the phone and the box idle between files (the last batch's write and fsync, the
rename, the round trip of the next `blob_get`, the box's first read). Each file
is still downloaded by `attachments.download`: its SHA-256 checked, written
under a temporary name, fsynced once and renamed durably; a file already under
its final name is skipped, so a restore cut off resumes where it stopped.

Memory stays flat: at most `WINDOW` streams, each with its bounded buffer
(client/stream_buffer.py) and one write batch, and one batch of hashes read
back from the history on disk. While they run, glibc keeps a few MiB of freed
memory for the next pieces instead of trimming and faulting them in again
(malloc_tuning.streaming, as the box's blob streams); it goes back after.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from strongroom import malloc_tuning
from strongroom.client import attachments
from strongroom.client.link import Link
from strongroom.client.restore import HistoryStore, attachment_batches

# Files downloaded at once. Two hide the gap between files (and, over a real network,
# the next blob_get's round trip: a large part of a small file's time over Tor).
# More bought no MiB/s on loopback and cost the phone CPU (streams interleaved in
# the box's 1 MiB batches keep more bytes in flight than the caches hold): pinned,
# 512 MiB, five rounds each at load 2.3-3.1, phone CPU per MiB 2.54 (one at a time),
# 2.62 (two), 2.73 (four); MiB/s 255, 237, 242 (docs/benchmarks.md).
WINDOW = 2


async def download_all(
    link: Link, store: HistoryStore, directory: Path, window: int = WINDOW
) -> None:
    """Download every attachment the records in `store` name into `directory` (named by
    hash), up to `window` at a time; the first failure is raised once the downloads
    still running are stopped (their partial files are kept for the next resume)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    # Freed memory kept for the next pieces while the files stream (malloc_tuning).
    with malloc_tuning.streaming():
        await _download_all(link, store, directory, window)


async def _download_all(link: Link, store: HistoryStore, directory: Path, window: int) -> None:
    running: dict[asyncio.Task[bytes], bytes] = {}  # download -> the hash it fetches

    async def settle(wait_for_all: bool) -> None:
        """Wait until there is room in the window (or nothing left); raise a failure."""
        while running and (wait_for_all or len(running) >= window):
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                del running[task]
                task.result()  # a hash mismatch or a lost link stops the restore

    try:
        # Read back from disk a batch at a time: the history is never in memory whole.
        batches = attachment_batches(store)
        while (hashes := await asyncio.to_thread(next, batches, None)) is not None:
            for sha256 in hashes:
                # The same blob named twice while its first download still runs.
                if sha256 in running.values():
                    continue
                target = directory / sha256.hex()
                if await asyncio.to_thread(target.exists):
                    continue
                await settle(wait_for_all=False)
                task = asyncio.ensure_future(attachments.download(link, sha256, target))
                running[task] = sha256
        await settle(wait_for_all=True)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
