"""A streamed bundle member's hashing, deflating and writing, on a second thread.

An export renders records.html and records.pdf in Python (holding the GIL) while
each 64 KiB block of them must be hashed for the manifest, CRC'd, deflated,
hashed again for the container seal and written: C work that lets the GIL go.
Done on the rendering thread it was a fifth of a 10,000-message export's time
on one core while the box's other core idled; handed to this thread it runs
beside the rendering. The bytes, their order and the digests are the same.
"""

from __future__ import annotations

import queue
import threading
from typing import Protocol

# Blocks waiting for the thread: bounded, so memory stays a few blocks (~0.5 MiB)
# when the thread falls behind (the renderer then waits).
_QUEUED = 8


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class BlockPipe:
    """`send(block)`: `digest.update(block)` then `target.write(block)`, in order, on a
    thread of its own. `close()` waits for every block and raises what the thread
    met (the writes after a failure are dropped: the export is failing anyway)."""

    def __init__(self, digest: _Digest, target: _Writable, *, queued: int = _QUEUED) -> None:
        self._digest, self._target = digest, target
        self._queue: queue.Queue[bytes | None] = queue.Queue(queued)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bundle-member", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is not None:
                continue  # keep taking blocks so the sender never waits forever
            try:
                self._digest.update(block)
                self._target.write(block)
            except BaseException as exc:  # given back to the sender by close()
                self._error = exc

    def send(self, block: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(block)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


__all__ = ["BlockPipe"]
