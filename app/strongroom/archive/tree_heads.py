"""The log's signed tree heads in the database: the newest, the next one signed, and
the time a batch (its leaves, events and head) carries.

Plain functions of a connection, so that a reader connection (the web UI, exports,
the phones' history) reads heads and proofs without the writer (Archive).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nacl.signing import SigningKey

from strongroom.archive.db import Connection
from strongroom.archive.nodes import SqlNodeStore
from strongroom.proof.merkle import MerkleLog
from strongroom.proof.sth import SignedTreeHead, sign_tree_head

Clock = Callable[[], float]


def now_ms(clock: Clock = time.time) -> int:
    return int(clock() * 1000)


def latest_tree_head(conn: Connection) -> SignedTreeHead | None:
    row = conn.execute(
        "SELECT tree_size, root_hash, timestamp_ms, signature FROM tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return SignedTreeHead(int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3]))


def reader_log(conn: Connection) -> MerkleLog:
    """A read-only view of the log over a reader connection (for proofs off the writer)."""
    return MerkleLog(SqlNodeStore(conn))


def batch_time_ms(conn: Connection, clock: Clock) -> int:
    """The clock, but never earlier than the newest signed head (time only moves on).

    A Pi has no RTC: after a power cut its clock may start in the past until
    NTP answers. Leaves, audit events and heads then carry the newest head's
    time instead; the runtime shows and audits the clock itself
    (strongroom.appliance.clockwatch).
    """
    row = conn.execute(
        "SELECT timestamp_ms FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    clock_ms = now_ms(clock)
    return clock_ms if row is None else max(clock_ms, int(row[0]))


def sign_head(conn: Connection, key: SigningKey, log: MerkleLog, at_ms: int) -> SignedTreeHead:
    """Sign the log as it stands and store the head (in the caller's transaction)."""
    head = sign_tree_head(key, log.size, log.root(), at_ms)
    conn.execute(
        "INSERT OR REPLACE INTO tree_heads (tree_size, root_hash, timestamp_ms, signature)"
        " VALUES (?, ?, ?, ?)",
        (head.tree_size, head.root_hash, head.timestamp_ms, head.signature),
    )
    return head
