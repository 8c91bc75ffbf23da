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

Raised only while a stream runs (`streaming`); when the last one ends the threshold
goes back to IDLE_TRIM_BYTES and malloc_trim hands back what the main arena and
every arena's free lists kept. It does not shrink the top of the worker threads'
arenas (glibc trims those only on a free there): the bench's box process held
70-72 MiB of RSS after a 1 GiB restore against 59-61 without this (fresh processes,
1 round each, and the 4-round interleaved runs), at most STREAM_TRIM_BYTES per
worker arena that streamed. Setting a threshold freezes glibc's sliding mmap
threshold, so that one is set too, at start (MMAP_BYTES: below it, allocations such
as a 256 KiB socket read come from the arenas, as they do once glibc's own
threshold has slid up). Elsewhere than glibc (musl, macOS) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_BYTES = 1024 * 1024
# A stream holds two 1 MiB batches (one read ahead): 2 MiB still left 138 faults per
# MiB (of 211), 4 MiB 1-23, 8 MiB 0-6.
STREAM_TRIM_BYTES = 4 * 1024 * 1024
IDLE_TRIM_BYTES = 2 * 256 * 1024  # where glibc's sliding threshold settles on the box

_streams = 0  # blob streams running (all on the event loop's thread)


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


@contextlib.contextmanager
def streaming() -> Iterator[None]:
    """While a blob stream runs: keep STREAM_TRIM_BYTES freed per arena; after the last
    one, back to the idle threshold and what was kept handed back."""
    global _streams
    if _streams == 0:
        # The mmap threshold first (a process that did not call keep_freed_memory):
        # glibc stops sliding it once a threshold is set.
        _mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)
        _mallopt(M_TRIM_THRESHOLD, STREAM_TRIM_BYTES)
    _streams += 1
    try:
        yield
    finally:
        _streams -= 1
        if _streams == 0:
            _mallopt(M_TRIM_THRESHOLD, IDLE_TRIM_BYTES)
            give_back()
