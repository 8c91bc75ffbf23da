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
"""

from __future__ import annotations

from strongroom.archive.db import Connection

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
