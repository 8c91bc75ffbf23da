"""The conversation index as an LSM (migration 10): finding a conversation's records.

A record's key (conversation_id, sent_at, record_id = records.id) is in exactly one of
two tables: `conv_recent` (new records, arrival order, filled by a trigger on records)
or `conv_folded` (WITHOUT ROWID, in conversation order). `fold_step` moves the first
into the second a few conversations at a time, each step in a transaction of its own
after a group commit has sent its acks (`Folder`, Archive.fold_if_due), so a reader
never sees a key twice or not at all. Destroyed
records keep their keys (an export lists them as gaps); readers that want live
records subtract `records_destroyed`, as they did with the old index.

Every reader that finds records by conversation reads both tables through the SQL
built here, one arm per table:
- `union(arm)`: the arm's SELECT once per table, joined by UNION ALL. Put an ORDER BY
  on result columns after it: SQLite merges the two arms, each in its index's order
  (no temporary b-tree, so an export streams). A view over the two tables was tried:
  SQLite does not flatten it under a join with an ORDER BY, and sorted whole
  conversations in memory (tests/test_conv_keys.py checks every reader's plan).
- `summed(expr)`: a scalar expression per table (a count), added up.
- `exists(arm)`: EXISTS in either table.
In both, `{keys}` in the text names the table; a reader's parameters are given once
per arm (`per_arm`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.archive.db import Connection

ARMS = ("conv_folded", "conv_recent")
log = logging.getLogger(__name__)

# Keys in conv_recent that trigger a fold after a batch. The probe on corpus copies
# (docs/benchmarks.md) folded 20,000 keys in 49-175 ms at 5M, 0.3 KiB written per
# record: a fold every ~36 group commits, in a transaction of its own after one of
# them (Archive.fold_if_due), once that commit's acks are sent.
FOLD_AT = 20_000


def union(arm: str) -> str:
    """`arm` (a SELECT naming its key table `{keys}`) over both tables, UNION ALL."""
    return " UNION ALL ".join(arm.replace("{keys}", table) for table in ARMS)


def summed(expr: str) -> str:
    """`expr` (a scalar subquery's text naming `{keys}`) added up over both tables."""
    return "(" + " + ".join("(" + expr.replace("{keys}", table) + ")" for table in ARMS) + ")"


def exists(arm: str) -> str:
    """EXISTS of `arm` (naming `{keys}`) in either table."""
    arms = ("EXISTS (" + arm.replace("{keys}", table) + ")" for table in ARMS)
    return "(" + " OR ".join(arms) + ")"


def per_arm(args: Sequence[Any]) -> list[Any]:
    """The parameters of a `union`, `summed` or `exists` text: one set per arm."""
    return [value for _ in ARMS for value in args]


def has_lsm(conn: Connection) -> bool:
    """Migration 10 onwards (a test may open an archive built at an older schema)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conv_recent'"
    ).fetchone()
    return row is not None


def recent_span(conn: Connection) -> int:
    """About how many keys wait in conv_recent: the span of its rowids (two b-tree
    edge reads, not a count of the table)."""
    # One min() or max() per SELECT: SQLite reads the b-tree's edge for each (both in one
    # SELECT scan the table).
    low, high = conn.execute(
        "SELECT (SELECT min(record_id) FROM conv_recent), (SELECT max(record_id) FROM conv_recent)"
    ).fetchone()
    return 0 if low is None else int(high) - int(low) + 1


# Keys moved by one fold step: a fold runs in steps of whole conversations, one step
# after each group commit (more while no push waits), so a push arriving during a
# fold waits for a step (~1/4 of a 20,000-key fold's 40-140 ms at 5M), not the whole
# fold. Each step deletes its keys from conv_recent by conversation range, which
# rewrites that table's pages once per step: few steps keep that small.
FOLD_STEP = 5_000


@dataclass(frozen=True)
class Fold:
    keys: int
    seconds: float
    # After a step: the last conversation it folded, or None once no key of a later
    # conversation waits (the fold is complete).
    upto: int | None = None


# The keys in conversation order (conv_recent_conversation gives it: no sort), then
# the table emptied. Both run inside one transaction: a crash between them
# rolls both back (the keys stay in conv_recent), and conv_folded's primary key
# refuses a key folded twice rather than keeping a duplicate.
_FOLD = (
    "INSERT INTO conv_folded (conversation_id, sent_at, record_id)"
    " SELECT conversation_id, sent_at, record_id FROM conv_recent"
    " ORDER BY conversation_id, sent_at, record_id"
)


def fold(conn: Connection) -> Fold:
    """Move every key of conv_recent into conv_folded. Call inside a transaction."""
    if not conn.in_transaction:
        raise RuntimeError("fold runs inside a transaction")
    t0 = time.perf_counter()
    # FAST: the freed pages of conv_recent are reused by the next batches; zeroing
    # them (secure_delete ON) would write each once more for nothing (keys, not content).
    conn.execute("PRAGMA secure_delete = FAST")
    try:
        moved = conn.execute(_FOLD).rowcount
        conn.execute("DELETE FROM conv_recent")
    finally:
        conn.execute("PRAGMA secure_delete = ON")
    return Fold(int(moved), time.perf_counter() - t0)


_STEP_END = (
    "SELECT conversation_id FROM conv_recent WHERE conversation_id > ?"
    " ORDER BY conversation_id, sent_at LIMIT 1 OFFSET ?"
)
_STEP_FOLD = (
    "INSERT INTO conv_folded (conversation_id, sent_at, record_id)"
    " SELECT conversation_id, sent_at, record_id FROM conv_recent"
    " WHERE conversation_id > ? AND conversation_id <= ?"
    " ORDER BY conversation_id, sent_at, record_id"
)
_STEP_DELETE = "DELETE FROM conv_recent WHERE conversation_id > ? AND conversation_id <= ?"
_LAST = 1 << 62  # above every conversation id


def fold_step(conn: Connection, after: int, keys: int) -> Fold:
    """Move the keys of the conversations after `after` (an id; 0 for the first step),
    whole conversations, about `keys` keys, into conv_folded. Call inside a
    transaction: a reader sees each conversation's keys in one table or the other."""
    if not conn.in_transaction:
        raise RuntimeError("fold_step runs inside a transaction")
    t0 = time.perf_counter()
    row = conn.execute(_STEP_END, (after, max(keys, 1) - 1)).fetchone()
    upto = _LAST if row is None else int(row[0])
    conn.execute("PRAGMA secure_delete = FAST")  # as in `fold`: keys, not content
    try:
        moved = conn.execute(_STEP_FOLD, (after, upto)).rowcount
        conn.execute(_STEP_DELETE, (after, upto))
    finally:
        conn.execute("PRAGMA secure_delete = ON")
    more = conn.execute(
        "SELECT 1 FROM conv_recent WHERE conversation_id > ? LIMIT 1", (upto,)
    ).fetchone()
    return Fold(int(moved), time.perf_counter() - t0, None if more is None else upto)


class Folder:
    """A fold in steps on the writer connection (Archive.fold_if_due): when one
    starts, where it has got to, and when to try again after a failed step."""

    def __init__(self) -> None:
        self.after: int | None = None  # a fold under way: the last conversation folded
        self.retry_at = 0  # after a failed step: the span of keys to wait for
        self.last: Fold | None = None  # the newest step

    def step(self, conn: Connection, at: int | None = None) -> Fold | None:
        """The next step, in a transaction of its own; None when no fold is due (or
        the step failed: logged, its keys kept in conv_recent)."""
        after = self.after
        if after is None:
            # Two b-tree edge reads, outside any transaction: most commits fold nothing.
            due = FOLD_AT if at is None else at
            if recent_span(conn) < max(due, self.retry_at):
                return None
            after = 0  # conversation ids start at 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            done = fold_step(conn, after, FOLD_STEP)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.after = None
            if not isinstance(exc, Exception):
                raise
            # The batches it follows are durable and acked: not theirs to fail. Retry
            # once FOLD_AT more keys wait, not after every commit (a fold that fails
            # for good would otherwise cost each commit a failed fold).
            self.retry_at = recent_span(conn) + FOLD_AT
            log.warning("conversation index fold failed, keys kept in conv_recent: %s", exc)
            return None
        self.after = done.upto
        self.retry_at = 0
        self.last = done
        return done


# A fingerprint of a set of keys: how many, the sum of their record ids, and the sum
# of their dates reduced modulo a prime (a plain sum of 5M dates in ms nears SQLite's
# integer limit). The records' own is read from records_dedup (device_id, sent_at,
# record_id; rowid), which holds both columns: no record row is read. The keys' fourth
# term, sum of conversation_id * record_id modulo the prime, finds a key moved to
# another conversation (the record then missing from its own conversation's pages and
# exports, and listed in the other's); no index of records holds conversation_id, so
# the records' side of it is summed by verify's own pass over every record
# (`conversation_term`, verify_records.py), not by a second read of the table.
_PRIME = 1_000_000_007
_KEYS_PRINT = (
    "SELECT count(*), coalesce(sum(record_id), 0), coalesce(sum(sent_at % ?), 0),"
    " coalesce(sum((conversation_id * record_id) % ?), 0) FROM "
)
_RECORDS_PRINT = (
    "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(sent_at % ?), 0)"
    " FROM records INDEXED BY records_dedup"
)
_RECORDS_CONVERSATIONS = "SELECT coalesce(sum((conversation_id * id) % ?), 0) FROM records"


def conversation_term(conversation_id: int, record_id: int) -> int:
    """A record's share of the conversations' fingerprint (records.id as record_id)."""
    return (conversation_id * record_id) % _PRIME


def index_problems(conn: Connection, conversations: int | None = None) -> list[str]:
    """What the full verify says when the two tables do not hold exactly one key per
    record, in its record's conversation: a record without its key is missing from its
    conversation's pages, exports and holds' counts; a key twice lists it twice; a key
    in another conversation shows the record there. Index-only reads, but for
    `conversations`: the sum of `conversation_term` over every record, which verify's
    pass over the records gives (None: read here)."""
    if not has_lsm(conn):
        return []  # an archive opened at an older schema version
    keys = [0, 0, 0, 0]
    for table in ARMS:
        row = conn.execute(_KEYS_PRINT + table, (_PRIME, _PRIME)).fetchone()
        keys = [a + int(b) for a, b in zip(keys, row, strict=True)]
    records = [int(v) for v in conn.execute(_RECORDS_PRINT, (_PRIME,)).fetchone()]
    problems = []
    if keys[:3] != records:
        problems.append(
            f"conversation index: {keys[0]:,} keys in conv_folded and conv_recent for"
            f" {records[0]:,} records (or keys that are not the records'): a record without"
            " its key is missing from its conversation's pages and exports"
        )
    if conversations is None:
        conversations = int(conn.execute(_RECORDS_CONVERSATIONS, (_PRIME,)).fetchone()[0])
    if keys[3] % _PRIME != conversations % _PRIME:
        problems.append(
            "conversation index: keys in conv_folded and conv_recent name another"
            " conversation than their records': a record is missing from its own"
            " conversation's pages and exports, and shown in another's"
        )
    return problems
