"""What a write operation sees: `Txn`, and the types of the ops `Archive.write_batch` runs.

Apart from store.py so that the archive module stays small; store.py re-exports
these names, which is where callers import them from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from strongroom.archive.batch_ops import Lookups
from strongroom.archive.batch_rows import BatchRows
from strongroom.archive.db import Connection
from strongroom.archive.record import leaf_data
from strongroom.proof.merkle import leaf_hash

T = TypeVar("T")


@dataclass
class Txn:
    """What a write operation sees: the connection and a way to add log leaves."""

    conn: Connection
    first_index: int
    at_ms: int
    leaves: list[bytes] = field(default_factory=list)
    # Schema 8: a message's text is kept inside its signed record only (writes.py).
    text_once: bool = True
    # Schema 10: a conversation's records are found through conv_keys' two tables.
    conv_lsm: bool = True
    # A batch of records only: its duplicates and devices, looked up once (batch_ops).
    lookups: Lookups | None = None
    # A batch of records only: rows inserted at the batch's end (batch_rows).
    rows: BatchRows | None = None

    def append_leaf(self, kind: str, content_sha256: bytes) -> int:
        """Insert a log leaf committing to `content_sha256`; return its index."""
        index = self.first_index + len(self.leaves)
        data = leaf_data(kind, content_sha256, self.at_ms)
        if self.rows is not None:
            self.rows.leaves.append((index, kind, data, self.at_ms))
        else:
            self.conn.execute(
                "INSERT INTO log_leaves (idx, kind, leaf_data, at) VALUES (?, ?, ?, ?)",
                (index, kind, data, self.at_ms),
            )
        self.leaves.append(leaf_hash(data))
        return index


# A write op whose result the caller reads: WriteOpOf[int] is Callable[[Txn], int].
WriteOpOf = Callable[[Txn], T]
# Where ops of every kind meet (a batch): their results are whatever each returns.
WriteOp = WriteOpOf[Any]
