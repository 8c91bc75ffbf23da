"""The kept head: the newest signed tree head, also kept outside the database.

Why: a damaged WAL makes SQLite drop the last commits when it recovers, and the
shorter archive still agrees with itself. `tree_head.latest`, beside archive.db,
is how verify notices: a kept head larger than the log, or whose root the log no
longer reproduces at its size, names the loss (verify.add_leaf and the checks
after it; verify_incremental checks an older one with a consistency proof).

The file is two 512-byte slots, the second 4096 bytes after the first (a file of
4608 bytes), each: MAGIC (8 bytes) | sequence number (8, big-endian) | length (2) |
the head as JSON (SignedTreeHead.to_dict) | BLAKE2b-128 of all that | zeros. A
head is written over the slot with the lower sequence number, in place (one
pwrite), so the other slot keeps the previous head whole while it is written: a
reader, a process kill or a power cut in the middle finds that one. The reader
takes the valid slot with the higher sequence number. Why 4096 apart: in one 4 KiB
block (the layout before, slots side by side) a power cut tearing the block's write
could tear both, and neither the kernel nor an SD card promises writes smaller
than a block are atomic; in two blocks, the write of one slot never rewrites the
other's block. (A card that loses a whole erase block in a power cut can still
lose both; verify then says the kept head is unreadable.) The side-by-side file is
read, and converted when the archive is opened.

Why in place, not a temporary file renamed over the old one (as before this
module): ext4 writes a file out at a rename over another (auto_da_alloc), 3.4 ms
per group commit measured before the acks (docs/benchmarks.md), and a temporary
name in the data dir appears and vanishes under anything that lists it. The file
is now created (or converted from the old one-JSON format) once, when the archive
is opened; after that its inode never changes and nothing else appears beside it.

What holds, and when (docs/architecture.md, "The kept head"):
- never ahead of the durable log: a head is kept after its COMMIT returned
  (synchronous = FULL), and before the committer sends that batch's acks;
- a process killed (SIGKILL, a crash) between a COMMIT and this write: that
  batch was not acknowledged, and the file lags the log by that one commit; the
  pwrite itself is in the page cache once it returns, so a kill after it loses
  nothing;
- a power cut: while the group committer runs, a flusher thread fdatasyncs the
  file after a write, off the ack path, at most once per FLUSH_INTERVAL_S: the
  writes made meanwhile coalesce into the next flush, and the file lags by at
  most the commits of that interval and of the flush itself (the old file was
  never flushed: up to the kernel's ~30 s writeback). Not after every commit:
  that doubled the fsyncs of a busy box (measured: ~1 flush per group commit),
  and a Pi's SD card pays each one. Without the committer (a CLI command, a
  test) the file is flushed at close.
verify accepts a lagging head the log contains (a prefix of it) and refuses one
it does not contain.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nacl.encoding import RawEncoder
from nacl.hash import blake2b

from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead

log = logging.getLogger(__name__)

MAGIC = b"SRKHEAD1"
WITNESS_FILE = "tree_head.latest"  # beside archive.db
# The flusher's pace while commits keep coming (see the module doc).
FLUSH_INTERVAL_S = 0.25
# A file that could not be opened (a full or read-only disk, a file a root CLI run
# left 0600) is tried again at most this often, at a commit: the fault may be fixed
# while the box runs, and an open at every commit would cost a busy box too much.
RETRY_INTERVAL_S = 10.0
SLOT_BYTES = 512
SLOTS = 2
SLOT_STRIDE = 4096  # the second slot's offset: another 4 KiB block (see the module doc)
FILE_BYTES = SLOT_STRIDE + SLOT_BYTES
_OLD_STRIDE = SLOT_BYTES  # the side-by-side layout before (1024 bytes)
_FIXED = struct.Struct(">8sQH")  # magic, sequence number, JSON length
_DIGEST_BYTES = 16
_MAX_JSON = SLOT_BYTES - _FIXED.size - _DIGEST_BYTES


def _digest(data: bytes) -> bytes:
    return blake2b(data, digest_size=_DIGEST_BYTES, encoder=RawEncoder)


def encode_slot(seq: int, head: SignedTreeHead) -> bytes:
    body = json.dumps(head.to_dict(), separators=(",", ":")).encode("ascii")
    if len(body) > _MAX_JSON:  # a head is ~240 bytes: this would be a bug
        raise ValueError(f"a tree head of {len(body)} bytes does not fit a slot")
    signed = _FIXED.pack(MAGIC, seq, len(body)) + body
    return (signed + _digest(signed)).ljust(SLOT_BYTES, b"\0")


def decode_slot(slot: bytes) -> tuple[int, SignedTreeHead] | None:
    """(sequence number, head) of a whole slot; None for a torn, empty or foreign one."""
    if len(slot) < _FIXED.size:
        return None
    magic, seq, length = _FIXED.unpack_from(slot)
    end = _FIXED.size + length
    if magic != MAGIC or length > _MAX_JSON or len(slot) < end + _DIGEST_BYTES:
        return None
    if _digest(slot[:end]) != slot[end : end + _DIGEST_BYTES]:
        return None
    try:
        return seq, SignedTreeHead.from_dict(json.loads(slot[_FIXED.size : end]))
    except (ValueError, MalformedTreeHeadError):
        return None


def _slot(content: bytes, i: int, stride: int = SLOT_STRIDE) -> bytes:
    return content[i * stride : i * stride + SLOT_BYTES]


def _seq_of(slot: bytes) -> int:
    """A slot's sequence number; 0 for a torn or empty one (written over first)."""
    found = decode_slot(slot)
    return 0 if found is None else found[0]


def decode(content: bytes) -> tuple[int, SignedTreeHead] | None:
    """The newest valid slot of a kept-head file's content (or an old one-JSON file's head)."""
    if content.startswith(b"{"):
        # Written by a box before this format: one JSON object, replaced by a rename.
        try:
            return 0, SignedTreeHead.from_dict(json.loads(content))
        except (ValueError, MalformedTreeHeadError):
            return None
    stride = _OLD_STRIDE if len(content) == SLOTS * _OLD_STRIDE else SLOT_STRIDE
    slots = [decode_slot(_slot(content, i, stride)) for i in range(SLOTS)]
    found = [s for s in slots if s is not None]
    return max(found, key=lambda s: s[0]) if found else None


def read_failure(path: Path, exc: OSError) -> str:
    """Why a file beside archive.db could not be read, and what to do (docs/operations.md,
    "A kept-head file is unreadable"): most often a command run as root left it root's."""
    if isinstance(exc, PermissionError):
        return (
            "permission denied: the box's user cannot read it, a command run as root may"
            f" have left it root's; give it back: sudo chown strongroom:strongroom {path}"
        )
    return f"{exc.strerror or exc}: check the data disk (dmesg)"


def unreadable(path: Path) -> str | None:
    """Why a kept-head file that exists holds no head (None: it holds one, or is missing).

    Such a file is no witness, and would otherwise pass for none at all: verify says
    so (losses.check_witness_files). The next commit's head makes it whole again."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return read_failure(path, exc)
    return None if decode(content) is not None else "no whole head in either slot"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_kept_head(path: Path) -> SignedTreeHead | None:
    """The head kept in `path`, or None if there is none (missing, unreadable, foreign)."""
    try:
        content = path.read_bytes()
    except OSError:
        return None
    found = decode(content)
    return None if found is None else found[1]


class KeptHead:
    """Writes the kept head in place; one instance per open archive.

    `keep` runs on the writer's thread (under the archive's write lock), `flush`
    on the flusher's: they share the file descriptor and no lock, so a flush in
    progress never holds a commit's acks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._retired: list[int] = []  # descriptors of a file deleted under us (see keep)
        self._flusher: threading.Thread | None = None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.flushes = 0
        # The retry's pace (monotonic), apart from whether the failure was logged.
        self.clock: Callable[[], float] = time.monotonic
        self._retry_at = 0.0
        # While heads cannot be written: since when (wall clock, ms) and why; None
        # once one is written again. The Integrity page shows it (integrity_views).
        self.failing_since_ms: int | None = None
        self.failure = ""
        # Called with the head found in the file before a retry's open writes over
        # it: the archive keeps it aside if the log lost it (lost_heads.py), as at
        # its own open; a file unreadable then may hold that evidence.
        self.before_reopen: Callable[[SignedTreeHead | None], object] | None = None

    def open(self, newest: SignedTreeHead | None) -> None:
        """Open the file; create it (or convert an old one) first, keeping its head.

        A head already kept there is kept as it is, even one the database no longer
        has: that is the evidence verify looks for. Otherwise `newest` is written.
        """
        # Left by a process killed inside _create: nothing reads it, and it would stay.
        try:
            self.path.with_suffix(".tmp").unlink(missing_ok=True)
        except OSError:
            pass  # a read-only disk: _create says so below if it must write
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            content = None
        except OSError as exc:
            self._warn(exc)
            return
        if content is not None and decode(content) is None:
            log.error("the kept tree head (%s) holds no whole head", self.path.name)
        if content is None or len(content) != FILE_BYTES or content.startswith(b"{"):
            found = None if content is None else decode(content)
            head = found[1] if found is not None else newest
            if head is None:
                return
            if not self._create(head):
                return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            self._warn(exc)

    def _create(self, head: SignedTreeHead) -> bool:
        """Write a whole new file beside it and rename it into place (once per open at most)."""
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, encode_slot(1, head).ljust(FILE_BYTES, b"\0"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)  # the rename itself survives a power cut
            return True
        except OSError as exc:  # a full or read-only disk: the database still has the head
            self._warn(exc)
            return False

    def keep(self, head: SignedTreeHead) -> None:
        """Write `head` over the older slot. The caller's commit is already durable."""
        fd = self._fd
        if fd is not None and self._deleted(fd):
            # Deleted under us (an operator, a test): write a new file, never into
            # an inode nobody can read. Rare; the old descriptor closes at close().
            self._retired.append(fd)
            self._fd = fd = None
            self._retry_at = 0.0
        if fd is None:
            # A new archive's first head, or a file that could not be opened: tried
            # again (not given up for the process's life), at most every RETRY_INTERVAL_S.
            now = self.clock()
            if now < self._retry_at:
                return
            if self.before_reopen is not None:
                self.before_reopen(read_kept_head(self.path))
            self.open(head)
            fd = self._fd
            if fd is None:
                self._retry_at = now + RETRY_INTERVAL_S
                return
        try:
            content = os.pread(fd, FILE_BYTES, 0)
            # Read each time, not remembered: another process (a CLI command beside the
            # box) may have kept a head since; both then write a head they committed.
            seqs = [_seq_of(_slot(content, i)) for i in range(SLOTS)]
            target = 0 if seqs[0] <= seqs[1] else 1
            os.pwrite(fd, encode_slot(max(seqs) + 1, head), target * SLOT_STRIDE)
        except OSError as exc:
            self._warn(exc)
            return
        if self.failing_since_ms is not None:
            log.warning("the kept tree head is written again (size %d)", head.tree_size)
            self.failing_since_ms = None
            self.failure = ""
        if self._flusher is not None:
            self._dirty.set()

    def _deleted(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_nlink == 0
        except OSError:
            return False  # the write below says what is wrong

    def flush(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            os.fdatasync(fd)
            self.flushes += 1
        except OSError as exc:
            self._warn(exc)

    # -- the flusher (while a group committer runs) -----------------------------------

    def start_flushing(self) -> None:
        if self._flusher is None:
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, name="kept-head", daemon=True)
            self._flusher.start()

    def stop_flushing(self) -> None:
        if self._flusher is not None:
            self._stop.set()
            self._dirty.set()
            self._flusher.join()
            self._flusher = None

    def _flush_loop(self) -> None:
        while True:
            self._dirty.wait()
            # Cleared before the flush: a head kept during it sets it again, and is
            # flushed by the next turn (the writes meanwhile coalesce into that one).
            self._dirty.clear()
            if self._stop.is_set():
                break
            self.flush()
            self._stop.wait(FLUSH_INTERVAL_S)  # early when stopped
        self.flush()

    def close(self) -> None:
        self.stop_flushing()
        self.flush()
        for fd in [*self._retired, *([] if self._fd is None else [self._fd])]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fd = None
        self._retired = []

    def _warn(self, exc: OSError) -> None:
        # Logged once per outage (a full disk would otherwise log at every commit);
        # the retry does not depend on it (see keep).
        self.failure = str(exc)
        if self.failing_since_ms is None:
            self.failing_since_ms = int(time.time() * 1000)
            log.warning("the kept tree head could not be written (%s); the archive has it", exc)
