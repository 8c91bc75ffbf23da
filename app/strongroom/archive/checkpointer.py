"""The background checkpointer: the WAL is copied into archive.db off the commit path.

With SQLite's automatic checkpoint, the group commit that took the WAL past
db.WAL_AUTOCHECKPOINT_PAGES ran the checkpoint itself before returning: ~90 ms
more here, and on an SD card writing ~20 MiB/s the ~16,000 distinct pages of a
full WAL held that commit's acks about three seconds (review M2). While the
group committer runs, a thread of its own, with a connection of its own, runs a
PASSIVE checkpoint once the WAL holds that many frames: PASSIVE never waits for
readers or the writer, so commits go on appending to the WAL meanwhile, and it
copies what no reader still needs. The frames committed during it (a batch or
two) are copied right after, so that the next commit starts the WAL from its
beginning again: lock-free first (between bursts of records that works), and
under steady ingest, after LOCK_FREE_CATCH_UPS tries, with new transactions held
off for that short copy (at most TAIL_PAGES pages); without that the catch-up
rarely ended between a commit and the next BEGIN and copied the same hot pages
again and again.

The bound: the writer connection keeps SQLite's automatic checkpoint, at
WAL_CHECKPOINT_BOUND_PAGES (twice the threshold). Should the WAL get there
anyway (a card slower than the ingest, or this thread stopped by an error), the
commit that crosses it checkpoints itself, PASSIVE, as every commit at the
threshold did before: that commit waits, nobody else does. RESTART or TRUNCATE
would instead wait for every reader (a backup or an export reads for minutes)
while holding off every writer. A reader that pins old frames keeps any
checkpoint from finishing, as before: that is the readers' price, not the WAL's.

A checkpoint that fails is logged and tried again at the next poke; a thread that
dies (whatever its loop does not catch) is not restarted, since what killed it may
kill it again at once: `on_died` makes it the box's `checkpointer` fault (dashboard,
`strongroom status`, the status line, the panel's error) until a restart, while the
bound keeps the WAL in check on the commit path.

The WAL's frame count is read from the wal-index header in `archive.db-shm`
(SQLite's documented wal.c layout: mxFrame at byte 16, the checkpoint's
nBackfill at byte 96, native byte order), a 136-byte read that takes no lock and
writes nothing. A header this code does not recognise turns the thread into a
no-op (logged once): the bound still checkpoints on the commit path.

That read goes through ONE descriptor, opened once and closed by Archive.close
after the archive's connection (`WalIndex`). Closing any descriptor of a file
drops every POSIX lock the process holds on it, SQLite's own included
(sqlite.org/howtocorrupt.html, 2.2). Opened and closed at each look, as it once
was, it dropped the box's shared lock on the wal-index within a second of every
commit: the next process to open the archive (a CLI command beside the box)
then found nobody using it, truncated the wal-index to rebuild it, and the box,
whose SQLite maps that file, died of SIGBUS when it touched it meanwhile (with
its WAL read and write locks gone as well, two processes could also have
written at once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from strongroom.archive import db
from strongroom.archive.db import Connection
from strongroom.utc import iso_utc

log = logging.getLogger(__name__)

# SQLite's WALINDEX_MAX_VERSION: the wal-index layout read below.
_WALINDEX_VERSION = 3007000
# iVersion, unused, iChange, isInit, bigEndCksum, szPage, mxFrame
_HEADER = struct.Struct("=IIIBBHI")
_HEADER_BYTES = 48
_BACKFILL_AT = 96
_READ_BYTES = 136
# Without a poke (a CLI process writing beside the box), the WAL is looked at this often.
POLL_S = 1.0
# The frames committed during a background checkpoint are copied with new
# transactions held off when there are at most this many (~8 MiB: ~0.4 s on an SD
# card writing 20 MiB/s; a group commit of ~500 records writes 700-1,200 pages).
TAIL_PAGES = 2_000
# Lock-free tries at that tail before writes are held off for it (run_once).
LOCK_FREE_CATCH_UPS = 2


def bound_pages() -> int:
    """The WAL size at which the commit path checkpoints after all (see the module doc)."""
    return 2 * db.WAL_AUTOCHECKPOINT_PAGES


@dataclass(frozen=True)
class WalState:
    frames: int  # frames in the WAL since it last started from its beginning (mxFrame)
    backfilled: int  # of which a checkpoint already copied into archive.db (nBackfill)


def parse_wal_index(data: bytes) -> WalState | None:
    """The WAL's frame counts from the first bytes of a wal-index, or None if it is not
    one we know."""
    if len(data) < _READ_BYTES:
        return WalState(0, 0)
    # SQLite keeps two copies of the header and writes the second first: equal copies
    # are a whole header, as its own readers check (a torn one is read next time).
    if data[:_HEADER_BYTES] != data[_HEADER_BYTES : 2 * _HEADER_BYTES]:
        return WalState(0, 0)
    version, _, _, is_init, _, _, frames = _HEADER.unpack_from(data)
    if version != _WALINDEX_VERSION or not is_init:
        return None
    (backfilled,) = struct.unpack_from("=I", data, _BACKFILL_AT)
    return WalState(frames, backfilled)


class WalIndex:
    """`archive.db-shm` read through one descriptor, kept until `close` (module doc:
    closing it while a connection of this process is open drops SQLite's locks).

    The owner (Archive) closes it after its last connection. Opened at the first look,
    not before: the file may not exist yet (no WAL open: nothing to copy).
    """

    def __init__(self, archive_path: Path) -> None:
        self.path = archive_path.with_name(archive_path.name + "-shm")
        self._fd: int | None = None
        self._closed = False
        self._lock = threading.Lock()  # the checkpointer's thread and a caller's

    def state(self) -> WalState | None:
        """The WAL's frame counts, or None if the wal-index is not one we know."""
        with self._lock:
            if self._closed:
                return WalState(0, 0)  # the archive is closed: nothing to copy
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return WalState(0, 0)  # no WAL open: nothing to copy
            data = os.pread(self._fd, _READ_BYTES, 0)
        return parse_wal_index(data)

    def close(self) -> None:
        """Only once no connection of this process has the archive open any more."""
        with self._lock:
            self._closed = True
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class Checkpointer:
    """A thread that checkpoints the archive's WAL (PASSIVE) once it reaches `threshold`."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        lock: threading.Lock,
        write_lock: threading.Lock,
        wal_index: WalIndex,
    ) -> None:
        self.path = path
        self._key = key
        self._wal_index = wal_index  # the archive's: it outlives this thread
        # Shared with the explicit checkpoints (Archive.checkpoint, an erasure's scrub)
        # so that one waits for the other instead of finding the WAL busy.
        self._lock = lock
        # The archive's write lock, held only to copy a short tail (run_once), and
        # only once the checkpoint lock is ours (never waited for with writes held).
        self._write_lock = write_lock
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._unknown_index_logged = False
        self._catch_ups = 0
        self.checkpoints = 0
        self.frames_copied = 0
        self.longest_s = 0.0  # the longest checkpoint that commits did not wait for
        self.tails = 0
        self.longest_tail_s = 0.0  # the longest a commit could have waited (a tail)
        self.failures = 0
        # Set once the thread has died (never cleared): why, as the box's fault shows it.
        self.died: str | None = None
        # Told on the dying thread, with that line (the box's `checkpointer` fault).
        self.on_died: Callable[[str], None] | None = None

    @property
    def threshold(self) -> int:
        return db.WAL_AUTOCHECKPOINT_PAGES

    def start(self) -> None:
        if self._thread is not None:
            return
        self._conn = db.connect(self.path, self._key)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A batch committed: the WAL may have reached the threshold."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread (a checkpoint under way finishes first) and close its connection."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the thread's end: the box says so
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        """Commits go on (the bound checkpoints on the commit path, each crossing
        commit waiting for its copy): not an outage, but no longer what the box is
        built for, so not silent either (module doc)."""
        log.critical("the WAL checkpointer stopped: commits checkpoint it now", exc_info=exc)
        self.died = (
            f"background WAL checkpoints stopped since {iso_utc(int(time.time() * 1000))}"
            f" ({type(exc).__name__}): the commit that takes the WAL past"
            f" {bound_pages():,} pages copies it (its acks wait)"
        )
        if self.on_died is not None:
            try:
                self.on_died(self.died)
            except Exception:
                log.exception("the checkpointer's on_died failed")

    def _loop(self) -> None:
        while True:
            self._wake.wait(POLL_S)
            self._wake.clear()
            if self._stopping:
                return
            try:
                if self.run_once():
                    self._wake.set()  # the frames written meanwhile: at once
            except Exception as exc:
                # SQLite's message names no key and no record; the next poke tries again
                # and, meanwhile, the bound checkpoints on the commit path.
                self.failures += 1
                log.error("background checkpoint failed: %s: %s", type(exc).__name__, exc)

    def run_once(self) -> bool:
        """Checkpoint if the WAL holds `threshold` frames, some not copied yet; True if
        it copied some without holding writes off (what was committed meanwhile is
        then worth a look at once)."""
        state = self._wal_index.state()
        if state is None:
            if not self._unknown_index_logged:
                self._unknown_index_logged = True
                log.warning("unknown WAL index layout: checkpoints stay on the commit path")
            return False
        if state.frames < self.threshold or state.backfilled >= state.frames:
            return False
        if state.backfilled == 0:
            self._catch_ups = 0  # a new round: the WAL started again since the last one
        lock_free = self._catch_ups < LOCK_FREE_CATCH_UPS
        if state.backfilled == 0 or state.frames - state.backfilled > TAIL_PAGES or lock_free:
            if state.backfilled > 0:
                self._catch_ups += 1
            # A reader holding old frames may leave nothing to copy: then wait for the
            # next poke rather than ask again at once.
            return self._checkpoint(state.backfilled, hold_writes=False) > 0
        # What was committed during those copies (a batch or two). Between bursts of
        # records a lock-free copy of it ends before the next BEGIN and the WAL starts
        # again from its beginning. Under steady ingest it rarely does, and each try
        # copied the same hot pages again (+4 % bytes per record measured with no
        # limit): after LOCK_FREE_CATCH_UPS tries this short tail is copied with new
        # transactions held off. The WAL then starts again at the next commit, which
        # waits for at most TAIL_PAGES pages, not for the whole WAL.
        self._checkpoint(state.backfilled, hold_writes=True)
        return False

    def _checkpoint(self, backfilled: int, *, hold_writes: bool) -> int:
        """One PASSIVE checkpoint; returns how many frames it copied."""
        conn = self._conn
        if conn is None:
            return 0
        t0 = time.perf_counter()
        # One lock order everywhere (Archive.checkpoint too): the checkpoint lock,
        # then the write lock. A destruction's scrub holds the checkpoint lock through
        # seconds of TRUNCATE retries; waited for with writes held off, every commit
        # would stall behind it (review L1).
        with self._lock, self._write_lock if hold_writes else contextlib.nullcontext():
            _busy, _frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        elapsed = time.perf_counter() - t0
        self.checkpoints += 1
        if hold_writes:
            self.tails += 1
            self.longest_tail_s = max(self.longest_tail_s, elapsed)
        else:
            self.longest_s = max(self.longest_s, elapsed)
        moved = max(int(copied) - backfilled, 0)
        self.frames_copied += moved
        return moved
