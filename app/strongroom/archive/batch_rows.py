"""A batch of records' rows, inserted a few statements at a time (group commit).

Each message of a phone's push cost the committer four statements of its own
(its conversation's upsert, its log leaf, its row in `records`, its row in
`messages`): four statements to prepare, bind and step, and four times the GIL
handed over and taken back, which under load (the event loop and the signature
workers want it too) cost more than the statements themselves
(docs/benchmarks.md, ingest over Noise). In a batch made only of records
(batch_ops.run_ops), those rows wait here and go in at the end of the batch with
multi-row VALUES statements: the same rows, the same values, the same ids
(SQLite gives a new row the largest id plus one, as `next_id` does; the
conversations' upserts run in the records' order, so a new conversation gets
the id it got one by one, and its peer and times end the same), inside the
batch's savepoint. A record this module does not take (an attachment, a receipt,
an archive before schema 8) first inserts what waits, then writes as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strongroom.archive.db import Connection

# Rows per statement: powers of two up to this (a handful of statement shapes for
# SQLite's statement cache; 64 rows of `records` bind 768 values, far below its limit).
MAX_ROWS = 64

LEAF_INSERT = "INSERT INTO log_leaves (idx, kind, leaf_data, at) VALUES "
LEAF_ROW = "(?, ?, ?, ?)"
RECORD_INSERT = (
    "INSERT INTO records (id, record_id, device_id, conversation_id, kind, client_id, sent_at,"
    " received_at, body, signature, content_sha256, log_index) VALUES "
)
RECORD_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# writes._INSERT_MESSAGE, row by row (has_attachment left at 0: schema.py).
MESSAGE_INSERT = (
    "INSERT INTO messages (record_id, conversation_id, direction, sender, text, text_at,"
    " text_len, sent_at, edits_client_id, deleted) VALUES "
)
MESSAGE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

# writes._conversation_id, row by row; RETURNING names each row's conversation
# (a conversation twice in one statement is updated by its second row, as one by one).
CONVERSATION_UPSERT = "INSERT INTO conversations (owner, ref, peer, created_at, last_at) VALUES "
CONVERSATION_ROW = "(?, ?, ?, ?, ?)"
CONVERSATION_CONFLICT = (
    " ON CONFLICT (owner, ref) DO UPDATE SET last_at = max(last_at, excluded.last_at),"
    " peer = CASE WHEN peer = '' THEN excluded.peer ELSE peer END"
    " RETURNING owner, ref, id"
)

Row = tuple[object, ...]
ConvKey = tuple[str, str]  # (owner, ref)


class _Conv:
    """Where a waiting row holds its conversation's id, known once the upserts ran."""

    __slots__ = ("key",)

    def __init__(self, key: ConvKey) -> None:
        self.key = key


@dataclass
class BatchRows:
    next_id: int  # the id SQLite would give the next row of `records`
    conversations: list[Row] = field(default_factory=list)
    leaves: list[Row] = field(default_factory=list)
    records: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)

    def take_record_id(self) -> int:
        row_id = self.next_id
        self.next_id += 1
        return row_id

    def conversation(self, owner: str, ref: str, peer: str, at: int) -> _Conv:
        """The conversation's upsert waits too; rows name it by this until it ran."""
        self.conversations.append((owner, ref, peer, at, at))
        return _Conv((owner, ref))

    def flush(self, conn: Connection) -> None:
        """Insert what waits, in the order it came: conversations first (the rows name
        them), leaves (nothing refers to them), records, then their messages."""
        ids = upsert_conversations(conn, self.conversations)
        self.conversations.clear()
        for insert, row, rows in (
            (LEAF_INSERT, LEAF_ROW, self.leaves),
            (RECORD_INSERT, RECORD_ROW, _named(self.records, ids)),
            (MESSAGE_INSERT, MESSAGE_ROW, _named(self.messages, ids)),
        ):
            insert_rows(conn, insert, row, rows)
        self.leaves.clear()
        self.records.clear()
        self.messages.clear()


def _named(rows: list[Row], ids: dict[ConvKey, int]) -> list[Row]:
    # A list per row, not a generator, and the exact type, not isinstance: 3.5 -> 1.1 µs
    # a record (its `records` and `messages` rows, 12 and 10 values) on the committer.
    return [tuple([ids[v.key] if type(v) is _Conv else v for v in row]) for row in rows]


def upsert_conversations(conn: Connection, rows: list[Row]) -> dict[ConvKey, int]:
    ids: dict[ConvKey, int] = {}
    at = 0
    while at < len(rows):
        count = min(MAX_ROWS, 1 << ((len(rows) - at).bit_length() - 1))
        sql = _statement(CONVERSATION_UPSERT, CONVERSATION_ROW, count) + CONVERSATION_CONFLICT
        found = conn.execute(sql, [v for r in rows[at : at + count] for v in r]).fetchall()
        ids.update({(str(owner), str(ref)): int(id_) for owner, ref, id_ in found})
        at += count
    return ids


def next_record_id(conn: Connection) -> int:
    row = conn.execute("SELECT max(id) FROM records").fetchone()
    return 1 if row[0] is None else int(row[0]) + 1


def insert_rows(conn: Connection, insert: str, row: str, rows: list[Row]) -> None:
    at = 0
    while at < len(rows):
        count = min(MAX_ROWS, 1 << ((len(rows) - at).bit_length() - 1))
        conn.execute(_statement(insert, row, count), [v for r in rows[at : at + count] for v in r])
        at += count


@lru_cache(maxsize=64)
def _statement(insert: str, row: str, count: int) -> str:
    return insert + ", ".join([row] * count)
