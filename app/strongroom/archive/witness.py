"""The kept head (`tree_head.latest`), written by a thread of its own.

After each batch the newest signed tree head is also kept outside the database
(architecture.md, "The kept head"). The writer thread used to write and rename
the file itself before waking the batch's waiters. ext4 writes a file's data out
when it is renamed over another, so every ack waited for a small synchronous
write: 3.4 ms a commit, 36 µs per record of the committer's time, under the ingest
benchmark with the disk shared (docs/benchmarks.md). Now the committer hands the
head to this thread and goes on.

What the file promises is unchanged: it is replaced atomically and not fsynced,
so it may lag behind the database (verify accepts an older head the log still
holds), and it is never ahead of it, because a head is handed over only once its
commit is durable. The thread writes only the newest head it was given (a burst
of commits costs one write). `flush` waits until that head is written: the
archive calls it before reading the file and when it closes.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from strongroom.proof.sth import SignedTreeHead

THREAD_NAME = "kept-head"


def write_head(path: Path, head: SignedTreeHead) -> None:
    """Replace the file at `path` with `head`, atomically; a full or read-only disk is
    ignored (the database already has the head)."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(head.to_dict()), encoding="ascii")
        os.replace(tmp, path)
    except OSError:
        pass


class HeadKeeper:
    """Writes the newest head handed to `keep` to `path`, off the caller's thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._pending: SignedTreeHead | None = None
        self._writing = False
        self._newest_size = -1  # a head older than one already handed over is skipped
        self._thread: threading.Thread | None = None
        self._closed = False

    def keep(self, head: SignedTreeHead) -> None:
        """Have `head` written soon (at once, on this thread, once closed)."""
        with self._cond:
            if head.tree_size < self._newest_size:
                return
            self._newest_size = head.tree_size
            if self._closed:
                write_head(self.path, head)
                return
            self._pending = head
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Return once every head handed over so far is written."""
        with self._cond:
            while self._pending is not None or self._writing:
                self._cond.wait()

    def close(self) -> None:
        """Write what is pending, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                head = self._pending
                if head is None:  # closed, nothing left to write
                    return
                self._pending = None
                self._writing = True
            try:
                write_head(self.path, head)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()
