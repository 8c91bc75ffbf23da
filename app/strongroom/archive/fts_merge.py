"""Merging the full-text index while no push waits (schema 12).

Each group commit writes one small FTS5 segment, and FTS5 merges them only 16 at a
time on the ack path (schema 12's `automerge`): cheaper per record at 5M, but a
search reads every segment, and after 100,000 new records into the 5M corpus it read
49 of them instead of 19. So the group committer, once a batch's acks are on their
way and while its queue stays empty, runs FTS5's own incremental merge in bounded
steps: `INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', STEP_PAGES)`,
one step per transaction, on the writer's connection (so the pages a merge frees are
zeroed as it frees them, `secure_delete = ON`, as the batch feed's merges are:
archive/scrub.py). A push that arrives during a step waits for that one step, never
for the whole merge.

With a positive page count, FTS5 merges a level once it holds `usermerge` segments
(schema 12: 8, the level width the search was measured at before schema 12) or
finishes a merge already under way, and writes about STEP_PAGES pages of output per
step. It reports whether it did anything only through the connection's change
counter: a difference of 2 or more means work was done; less, nothing is left to
merge until the next batch writes a segment (sqlite.org/fts5.html, "The 'merge'
command").

`FtsIndex` is the archive's glue for both: the per-batch feed (from migration 4;
before it, a test building an old archive, the schema's trigger feeds the index) and
whether a merge is due (at open, and after each batch's feed).
"""

from __future__ import annotations

import sqlite3

import sqlcipher3

from strongroom.archive.db import Connection
from strongroom.archive.schema import FTS_INDEX_PENDING, FTS_INDEX_PENDING_V4, FTS_MARK_INDEXED

# Pages of merged output per step (pgsz 3600 bytes): CPU p50 ~4-10 ms at 5M on the
# bench machine, a fixed part dominating below 32 (docs/benchmarks.md). FTS5 ends a
# step only between terms: one that reaches a word in every message copies its whole
# doclist (up to 0.57 s of CPU measured at 5M). A push arriving mid-step waits for it.
STEP_PAGES = 32

_MERGE = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('merge', ?)"


def merge_step(conn: Connection, pages: int = STEP_PAGES) -> bool:
    """One bounded merge step in a transaction of its own; True if it merged anything.

    A failure (a full disk) rolls the step back whole and is raised: the index is as
    it was, and the next batch's feed and merges carry on from there."""
    (synchronous,) = conn.execute("PRAGMA synchronous").fetchone()
    before = conn.total_changes
    # No fsync of its own (a push arriving mid-step would wait for it: up to seconds
    # while a checkpoint writes): the next batch's COMMIT (FULL) syncs the WAL, its
    # frames included, and the checkpointer syncs it before copying. A power cut
    # before either loses only the step; WAL recovery drops it whole.
    conn.execute("PRAGMA synchronous = NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_MERGE, (pages,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute(f"PRAGMA synchronous = {int(synchronous)}")
    return conn.total_changes - before >= 2


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
        # Segments to merge (`merge_if_due`) at open and after each batch's feed.
        self.merge_due = self.per_batch

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
        self.merge_due = True

    def merge_if_due(self, conn: Connection) -> bool:
        """One step of the idle merge if one is due (`merge_step`); True while due."""
        if self.merge_due:
            try:
                self.merge_due = merge_step(conn)
            except (sqlcipher3.Error, sqlite3.Error):
                # E.g. a full disk: the step rolled back; the next batch retries.
                self.merge_due = False
        return self.merge_due
