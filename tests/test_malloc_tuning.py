"""malloc_tuning: while a blob stream runs, its batches reuse freed memory instead of
fresh pages; once it ends, what the main arena kept goes back."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A box's blob stream in miniature: batches of 16 x 64 KiB allocated, then freed
# together; the page faults of 50 batches, and the RSS the stream's end gave back.
_BATCHES = """
import resource, sys
from strongroom import malloc_tuning
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
assert malloc_tuning.keep_freed_memory()  # as the box at start
stream = malloc_tuning.streaming() if sys.argv[1] == "streaming" else None
if stream is not None:
    stream.__enter__()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    batch = [bytes(65536) + b"x" for _ in range(16)]
    del batch
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
kept = rss()
if stream is not None:
    stream.__exit__(None, None, None)
print(faults, kept - rss())
"""


def _run(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _BATCHES, mode], capture_output=True, text=True, check=True
    ).stdout
    faults, returned = out.split()
    return int(faults), int(returned)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_stream_reuses_freed_batches_and_gives_them_back_when_it_ends() -> None:
    idle_faults, _ = _run("idle")
    stream_faults, returned = _run("streaming")
    # Outside a stream every freed 1 MiB batch is trimmed and faulted in again (~210
    # of its 256 pages here: 10,464 faults for the 50; in a stream 259).
    assert idle_faults > 50 * 100
    assert stream_faults < idle_faults / 10
    # What the stream kept (at least the last batch) goes back to the kernel at its end.
    assert returned >= 1024 * 1024


# Two blob streams in miniature as the box runs them: each batch read on a worker
# thread by blob_sender.read_batch (so in that thread's malloc arena), read ahead
# while the loop holds the one before, freed on the loop. RSS from before the streams
# to just after their end and to after IDLE_DELAY_S, with read_batch's hand-over to
# malloc_tuning and without it.
_THREADED = """
import asyncio, sys
from strongroom import malloc_tuning
from strongroom.peer import blob_sender
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
if sys.argv[1] == "unmarked":
    malloc_tuning.allocated_here = lambda buffer: None
malloc_tuning.IDLE_DELAY_S = 0.2
def stored_chunks():
    for _ in range(40 * blob_sender.BATCH_CHUNKS):
        yield bytes(65536) + b"x"  # decrypted on the worker thread
async def stream():
    with malloc_tuning.streaming():
        chunks = stored_chunks()
        batch = await asyncio.to_thread(blob_sender.read_batch, chunks)
        while not batch.last:
            ahead = asyncio.ensure_future(asyncio.to_thread(blob_sender.read_batch, chunks))
            await asyncio.sleep(0)  # the loop seals this batch meanwhile
            batch = await ahead
        del batch
async def main():
    # The executor's threads exist (and have their arenas) before the box's start.
    await asyncio.gather(*(asyncio.to_thread(bytes, 300_000) for _ in range(6)))
    assert malloc_tuning.keep_freed_memory()
    before = rss()
    await asyncio.gather(stream(), stream())
    at_end = rss() - before
    await asyncio.sleep(0.5)
    print(at_end, rss() - before)
asyncio.run(main())
"""


def _kept_after_streams(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _THREADED, mode], capture_output=True, text=True, check=True
    ).stdout
    at_end, after_delay = out.split()
    return int(at_end), int(after_delay)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_once_the_streams_have_ended_the_worker_threads_arenas_are_trimmed_too() -> None:
    at_end, kept = _kept_after_streams("marked")
    _, unmarked = _kept_after_streams("unmarked")
    mib = 1024 * 1024
    # Without the hand-over each worker arena that streamed keeps up to
    # STREAM_TRIM_BYTES on its top (glibc trims a thread's arena only on a free in it):
    # 4.6-15 MiB here, as many arenas as the executor's threads the reads landed on.
    assert unmarked > kept + 2 * mib
    # With it the process is back near where it was before the streams...
    assert kept < 1 * mib
    # ...once IDLE_DELAY_S has passed, not at once (a restore's next blob reuses it).
    assert at_end > kept + 2 * mib
