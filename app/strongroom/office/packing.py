"""Deflate in the background: what a bundle keeps compressed in memory while it is
written (its zip's central directory, its manifest's lines).

Each is ~90 bytes a member, kept deflated (level 1) so a 100,000-message export
does not hold 110 MB of them; compressing them was ~0.1 s of a 10,000-message
export's rendering thread (11 MB through deflate) while the box's other core
idled. Here each 64 KiB block is deflated by one shared worker thread (zlib lets
the GIL go), in the order given, so the compressed stream is the one the same
compressor makes in line; at most `_AHEAD` blocks wait (the writer then waits
for the oldest), so memory stays bounded when the worker falls behind.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

_AHEAD = 8  # blocks given to the worker and not yet taken back (~0.5 MiB)

_worker: tuple[int, ThreadPoolExecutor] | None = None  # (the process it runs in, it)
_worker_lock = threading.Lock()


def _shared_worker() -> ThreadPoolExecutor:
    """One thread for every bundle of the process: FIFO, so each compressor is fed in
    order (a compressor is only ever used by this thread until `finish`). A forked
    child gets its own: the parent's thread does not exist there."""
    global _worker
    with _worker_lock:
        if _worker is None or _worker[0] != os.getpid():
            _worker = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="bundle-pack"))
        return _worker[1]


class BackgroundDeflate:
    """`compress(block)` as zlib.compressobj(level) would, on the shared worker;
    `finish()` gives every compressed piece, in order."""

    def __init__(self, level: int) -> None:
        self._pack = zlib.compressobj(level)
        self._waiting: deque[Future[bytes]] = deque()
        self._packed: list[bytes] = []

    def compress(self, block: bytes) -> None:
        self._waiting.append(_shared_worker().submit(self._pack.compress, block))
        waiting = self._waiting
        while waiting and (waiting[0].done() or len(waiting) > _AHEAD):
            self._take(waiting.popleft())

    def _take(self, done: Future[bytes]) -> None:
        packed = done.result()
        if packed:
            self._packed.append(packed)

    def finish(self) -> list[bytes]:
        """Wait for the worker, flush the compressor: the whole stream, in pieces."""
        while self._waiting:
            self._take(self._waiting.popleft())
        self._packed.append(self._pack.flush())
        packed, self._packed = self._packed, []
        return packed
