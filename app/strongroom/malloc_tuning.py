"""glibc's malloc told to keep a few MiB of freed memory while attachments stream.

The box streams an attachment in batches of 16 decrypted 64 KiB chunks, read ahead
on a worker thread and freed by the loop once sealed (peer/blob_sender.py). With
glibc's defaults, every freed batch leaves more than 128 KiB free at the top of its
arena, which glibc gives back to the kernel (brk / madvise) at once; the next batch
then takes fresh pages, and the kernel zeroes each one on first touch. Measured on
the pinned attachments restore (scripts/bench_restore.py, interleaved rounds, load
5-8): 211-238 page faults per MiB sent, ~15 % of the box's CPU in them (perf); with
STREAM_TRIM_BYTES kept, 9-23 faults per MiB and the box's CPU per MiB 13-16 % lower
(medians of 4 interleaved rounds of 1 GiB, twice: 3.35 -> 2.80 and 3.18 -> 2.78 ms).

Raised only while streams run (`streaming`). IDLE_DELAY_S after the last one ends
the threshold goes back to IDLE_TRIM_BYTES and the memory kept is handed back: the
main arena's and every arena's free lists by malloc_trim, the top of each worker
thread's arena by freeing a blank 64 KiB block that thread allocated (`allocated_here`):
glibc shrinks a thread's arena only on a free in it, and malloc_trim does not. Without
that the bench's box process held 70.7-71.7 MiB of RSS after a 512 MiB restore,
59.6-61.1 before it; with it 58.4-59.3 (docs/benchmarks.md). Setting a threshold
freezes glibc's sliding mmap threshold, so that one is set too, at start (MMAP_BYTES:
below it, allocations such as a 256 KiB socket read come from the arenas, as they
do once glibc's own threshold has slid up).
The reference client's restore of attachments runs in `streaming()` too
(client/restore_files.py): the phone's socket reads (256 KiB), its decrypted pieces
and its 1 MiB write batches are freed as fast as the box's batches, and glibc trimmed
and faulted them in again the same way: ~40-50 page faults per MiB received, ~1 with
it (their CPU, ~0.1 ms per MiB, at the edge of what the bench machine resolves:
docs/benchmarks.md, 2026-12-06).
Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 1024 * 1024
# A stream holds two 1 MiB batches (one read ahead): 2 MiB still left 138 faults per
# MiB (of 211), 4 MiB 1-23, 8 MiB 0-6.
STREAM_TRIM_BYTES = 4 * 1024 * 1024
IDLE_TRIM_BYTES = 2 * 256 * 1024  # where glibc's sliding threshold settles on the box
# A restore asks for blob after blob: what the streams kept is handed back once none
# has run for this long, not between two of them (each hand-back faults the next
# stream's ~4 MiB per arena in again: 73-88 faults per MiB instead of 9-16).
IDLE_DELAY_S = 2.0

_streams = 0  # blob streams running (all on the event loop's thread)
# Per worker thread, the last stream buffer it allocated (one chunk, 64 KiB): freed
# after the last stream ends, so glibc trims that thread's arena (heap_trim runs only
# on a free in the arena, and malloc_trim does not shrink a thread arena's top).
_last_allocated: dict[int, object] = {}
_idle: asyncio.TimerHandle | None = None  # the hand-back, once the last stream ended


def _libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _mallopt(param: int, value: int) -> bool:
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, value) == 1)  # 1 on success, 0 on error


def keep_freed_memory() -> bool:
    """At start: the mmap threshold and the idle trim threshold (process-wide); False
    where there is no glibc mallopt (nothing changed)."""
    return _mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) and _mallopt(M_TRIM_THRESHOLD, IDLE_TRIM_BYTES)


def give_back() -> None:
    """Return the freed memory malloc kept to the kernel (glibc's malloc_trim)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim.argtypes = (ctypes.c_size_t,)
        trim(0)


# glibc trims a thread's arena on the free of a block of at least 64 KiB in it
# (FASTBIN_CONSOLIDATION_THRESHOLD): the blank block each worker thread hands over.
ARENA_HANDLE_BYTES = 64 * 1024


def allocated_here(buffer: object) -> None:
    """On a worker thread, while a stream runs: `buffer` (at least 64 KiB, freshly
    allocated by this thread, so in its arena) is held until the last stream ends,
    then freed to trim the arena. Replaces the one this thread gave before."""
    if _streams:
        _last_allocated[threading.get_ident()] = buffer


def _idle_again() -> None:
    global _idle
    _idle = None
    _mallopt(M_TRIM_THRESHOLD, IDLE_TRIM_BYTES)
    _last_allocated.clear()  # each free trims its thread's arena (heap_trim)
    give_back()


@contextlib.contextmanager
def streaming() -> Iterator[None]:
    """While a blob stream runs: keep STREAM_TRIM_BYTES freed per arena; IDLE_DELAY_S
    after the last one (at once outside an event loop), back to the idle threshold
    and what was kept handed back, the worker threads' arenas included."""
    global _streams, _idle
    if _streams == 0:
        if _idle is not None:  # the last stream ended moments ago: still raised
            _idle.cancel()
            _idle = None
        else:
            # The mmap threshold first (a process that did not call
            # keep_freed_memory): glibc stops sliding it once a threshold is set.
            _mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)
            _mallopt(M_TRIM_THRESHOLD, STREAM_TRIM_BYTES)
    _streams += 1
    try:
        yield
    finally:
        _streams -= 1
        if _streams == 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                _idle_again()
            else:
                _idle = loop.call_later(IDLE_DELAY_S, _idle_again)
