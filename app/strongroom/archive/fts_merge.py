"""Merging the full-text index while no push waits (schema 12).

Each group commit writes one small FTS5 segment, and FTS5 merges them only 16 at a
time on the ack path (schema 12's `automerge`): cheaper per record at 5M, but a
search reads every segment, and after 100,000 new records into the 5M corpus it read
49 of them instead of 19. So the group committer, once a batch's acks are on their
way and while its queue stays empty, runs FTS5's own incremental merge in bounded
steps: `INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', STEP_PAGES)`,
up to STEP_CALLS of them per step, a step one transaction, on the writer's connection
(so the pages a merge frees are zeroed as it frees them, `secure_delete = ON`, as the
batch feed's merges are: archive/scrub.py). Several calls share a transaction because
each frees (and zeroes) the input it consumed and the next reuses those pages: in one
transaction each such page reaches the WAL once, not twice (a third less written by
an idle merge at 5M; STEP_CALLS below).

With a positive page count, FTS5 merges a level once it holds `usermerge` segments
(schema 12: 8, the level width the search was measured at before schema 12) or
finishes a merge already under way, and writes about STEP_PAGES pages of output per
call. It reports whether it did anything only through the connection's change
counter: a difference of 2 or more means work was done; less, nothing is left to
merge until the next batch writes a segment (sqlite.org/fts5.html, "The 'merge'
command").

Whether a step would do anything is read from the index's own structure record
(`merge_pending`: one row of `messages_fts_data`, no write): a level with a merge
under way, or one holding `usermerge` segments; once the box is idle, before its
first step (not on the ack path), and after each call. A box whose batches left
nothing to merge runs no step at all when it goes quiet, and a merge ends without
a last call that finds nothing. A push that is queued between two calls of a step
ends it (what it merged is committed); one queued while a call runs interrupts it
(SQLite's progress handler, `YIELD_EVERY_OPS`): the step rolls back whole and the
push is committed at once; the step is tried again once the queue has been empty long
enough (GroupCommitter: twice as long after each step that yielded), so a step that
copies a long doclist (0.5-2.7 s at 5M) runs in a quiet spell, not under a push.

`FtsIndex` is the archive's glue for both: the per-batch feed (from migration 4;
before it, a test building an old archive, the schema's trigger feeds the index) and
whether a merge is due (at open, when idle after a batch's feed, after each step).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlcipher3

from strongroom.archive.db import Connection
from strongroom.archive.schema import FTS_INDEX_PENDING, FTS_INDEX_PENDING_V4, FTS_MARK_INDEXED

# Pages of merged output per 'merge' call (pgsz 3600 bytes): CPU p50 ~4-10 ms at 5M on
# the bench machine, a fixed part dominating below 32 (docs/benchmarks.md). FTS5 ends a
# call only between terms: one that reaches a word in every message copies its whole
# doclist (up to 0.57 s of CPU measured at 5M).
STEP_PAGES = 32

# 'merge' calls per step, one transaction. Each call ends by freeing the input pages it
# has consumed, zeroed (secure_delete ON: a WAL frame each), and the next call's output
# reuses them: in a transaction of their own that page is written twice to the WAL, in
# one it is written once, with its final content. With one call a step, a 5M index's
# idle merge (an 8,761-page level) wrote 145 MB; 2 calls 122, 4 108, 8 97, 16 91, the
# whole merge in one transaction 81 (the floor: each output page once to the WAL and
# once by the checkpoint). 8 takes most of it while a step stays ~256 pages, well
# inside the page cache (a transaction that outgrew it would spill to the WAL), and
# what a push's interruption throws away stays small (docs/benchmarks.md, "Bytes
# written per record in the long run").
STEP_CALLS = 8

_MERGE = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', ?)"

# How often (SQLite virtual machine steps: FTS5 writes each output page with a statement,
# it reads through the blob API, uncounted) a step looks whether a push is queued.
YIELD_EVERY_OPS = 100


class Yielded(Exception):
    """A merge step gave way to a queued push: rolled back whole, nothing merged."""


def merge_step(
    conn: Connection,
    pages: int = STEP_PAGES,
    yield_to: Callable[[], bool] | None = None,
    calls: int | None = None,
    width: int | None = None,
) -> bool:
    """One bounded merge step in a transaction of its own; True if it merged anything.

    Up to `calls` (STEP_CALLS) 'merge' calls of `pages` pages each, while a merge is
    due (`merge_pending` with `width`, the index's `usermerge`: FtsIndex passes the one
    it read at open; read here if None). With `yield_to`, the step gives way as soon as that returns
    True (a push is queued): between two calls it commits what it has merged and ends;
    inside a call (looked at every YIELD_EVERY_OPS virtual machine steps) the call is
    interrupted, the step rolled back whole (SQLite rolls back the transaction of an
    interrupted write), and Yielded is raised. A failure (a full disk) rolls the step
    back whole too and is raised: the index is as it was, and the next batch's feed
    and merges carry on from there."""
    calls = STEP_CALLS if calls is None else calls
    (synchronous,) = conn.execute("PRAGMA synchronous").fetchone()
    before = conn.total_changes
    gave_way = [False]

    def check() -> int:
        gave_way[0] = gave_way[0] or bool(yield_to and yield_to())
        return int(gave_way[0])  # non-zero: SQLite interrupts the statement

    # No fsync of its own (a push arriving mid-step would wait for it: up to seconds
    # while a checkpoint writes): the next batch's COMMIT (FULL) syncs the WAL, its
    # frames included, and the checkpointer syncs it before copying. A power cut
    # before either loses only the step; WAL recovery drops it whole.
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        if width is None and calls > 1:
            width = usermerge(conn)
        for call in range(calls):
            if call and yield_to is not None and yield_to():
                break  # a push is queued: keep what is merged, let it go first
            call_before = conn.total_changes
            # The handler watches the merge statement only: never the COMMIT, the
            # ROLLBACK, the PRAGMA that puts the writer's synchronous setting back, nor
            # the structure record's read between calls.
            if yield_to is not None:
                conn.set_progress_handler(check, YIELD_EVERY_OPS)
            try:
                conn.execute(_MERGE, (pages,))
            finally:
                if yield_to is not None:
                    conn.set_progress_handler(None, 0)
            if conn.total_changes - call_before < 2:
                break  # this call found nothing to merge
            if call + 1 < calls and not merge_pending(conn, width or _USERMERGE_DEFAULT):
                break
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:  # an interrupt has already rolled it back
            conn.execute("ROLLBACK")
        if gave_way[0] and isinstance(exc, sqlcipher3.Error | sqlite3.Error):
            raise Yielded("a push is queued") from exc
        raise
    finally:
        conn.execute(f"PRAGMA synchronous = {int(synchronous)}")
    return conn.total_changes - before >= 2


# The structure record: FTS5's list of levels and segments (fts5_index.c, "structure
# record"), at this rowid of the %_data table. A record that begins (after its 4-byte
# cookie) with this marker is a version 2 one (segments with tombstone counts: once
# FTS5's own 'secure-delete' option has been on, archive/scrub.py).
_STRUCTURE_ROWID = 10
_STRUCTURE_V2 = b"\xff\x00\x00\x01"
_USERMERGE_DEFAULT = 4  # FTS5_DEFAULT_USERMERGE


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint at `at` (7 bits a byte, big-endian, the 9th byte whole); the
    value and where the next field starts. IndexError past the end."""
    value = 0
    for n in range(8):
        byte = data[at + n]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + n + 1
    return (value << 8) | data[at + 8], at + 9


def structure_levels(data: bytes) -> list[tuple[int, int]] | None:
    """(segments in the merge under way, segments) of each level, from a structure
    record; None if it is not one this code reads whole."""
    try:
        v2 = data[4:8] == _STRUCTURE_V2
        at = 8 if v2 else 4
        levels, at = _varint(data, at)
        segments, at = _varint(data, at)
        _, at = _varint(data, at)  # the write counter
        found: list[tuple[int, int]] = []
        for _ in range(levels):
            merging, at = _varint(data, at)
            count, at = _varint(data, at)
            for _ in range(count * (8 if v2 else 3)):  # id, first, last page (+5 in v2)
                _, at = _varint(data, at)
            found.append((merging, count))
    except IndexError:
        return None
    if at != len(data) or (not v2 and sum(n for _, n in found) != segments):
        return None
    return found


def usermerge(conn: Connection) -> int:
    """The index's 'usermerge' setting: how many segments of a level a merge step takes."""
    row = conn.execute("SELECT v FROM messages_fts_config WHERE k = 'usermerge'").fetchone()
    return _USERMERGE_DEFAULT if row is None else int(row[0])


def merge_pending(conn: Connection, width: int) -> bool:
    """Whether a 'merge' step would do any work: a level with a merge under way, or one
    with `width` (usermerge) segments, as FTS5's fts5IndexMerge chooses. An unreadable
    structure record counts as work (the step itself then finds out)."""
    try:
        row = conn.execute(
            "SELECT block FROM messages_fts_data WHERE id = ?", (_STRUCTURE_ROWID,)
        ).fetchone()
    except (sqlcipher3.Error, sqlite3.Error):
        return True  # read when idle, outside any batch: the step itself finds out
    if row is None:
        return False  # an empty index
    levels = structure_levels(bytes(row[0]))
    if levels is None:
        return True
    return any(merging for merging, _ in levels) or max((n for _, n in levels), default=0) >= width


def segment_count(conn: Connection) -> int:
    """How many segments the index has: what a search reads one seek of each."""
    row = conn.execute("SELECT count(DISTINCT segid) FROM messages_fts_idx").fetchone()
    return int(row[0])


def fts_fed_per_batch(conn: Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fts_state'"
    ).fetchone()
    return row is not None


class FtsIndex:
    """The writer's feed of the full-text index and its idle merge state.

    Not locked: the Archive calls it under its write lock, on its writer connection."""

    def __init__(self, conn: Connection, *, text_once: bool) -> None:
        self.per_batch = fts_fed_per_batch(conn)
        self._text_once = text_once
        self._width = usermerge(conn) if self.per_batch else _USERMERGE_DEFAULT
        # Segments to merge (`merge_if_due`): read at open, once idle after a batch's
        # feed, and after each step.
        self.merge_due = self.per_batch and merge_pending(conn, self._width)
        self._checked = True  # merge_due read from the structure record since the last feed
        self.steps = 0  # steps run to their end
        self.yields = 0  # steps interrupted by a queued push (rolled back)
        self.yielded = False  # the last step was one of them

    def feed(self, conn: Connection) -> None:
        """Index the batch's new messages, inside its transaction (a no-op before
        migration 4, where the schema's trigger does it)."""
        if not self.per_batch:
            return
        # Outside every op's savepoint, inside the batch's transaction: one
        # FTS5 segment per batch, committed with the rows or not at all.
        # Its merges free old segments' pages, zeroed as they are freed
        # (secure_delete ON), so a destruction need not wipe them again
        # (scrub.wipe_dirty_free_pages). FAST until schema 10: zeroing cost
        # no bytes at 5M (docs/benchmarks.md).
        conn.execute(FTS_INDEX_PENDING if self._text_once else FTS_INDEX_PENDING_V4)
        conn.execute(FTS_MARK_INDEXED)
        # Maybe due: whether it is (`merge_pending`) is read once the box is idle, off
        # the ack path, before a step would start (merge_if_due).
        self.merge_due = True
        self._checked = False

    def merge_if_due(self, conn: Connection, yield_to: Callable[[], bool] | None = None) -> bool:
        """One step of the idle merge if one is due (`merge_step`); True while due.

        With `yield_to`, a step gives way as soon as that returns True (a push is
        queued): rolled back, the merge still due, and `yielded` set."""
        self.yielded = False
        if self.merge_due and not self._checked:
            # The first look since the last batch: most batches leave no level at
            # `usermerge` segments, and then no step runs (nothing written).
            self._checked = True
            self.merge_due = merge_pending(conn, self._width)
        if not self.merge_due:
            return False
        try:
            merged = merge_step(conn, yield_to=yield_to, width=self._width)
        except Yielded:
            self.yielded = True
            self.yields += 1
            return True
        except (sqlcipher3.Error, sqlite3.Error):
            # E.g. a full disk: the step rolled back; the next batch retries.
            self.merge_due = False
            return False
        self.steps += 1
        # A step that found nothing ends the merge whatever the record says (no loop
        # of empty steps, should this reading and FTS5's own ever differ).
        self.merge_due = merged and merge_pending(conn, self._width)
        return self.merge_due
