"""The Merkle log's NodeStore on the archive's SQLCipher tables."""

from __future__ import annotations

from collections.abc import Iterable

from strongroom.archive.db import Connection
from strongroom.proof.node_store import NodeMissingError


class SqlNodeStore:
    """Perfect-subtree hashes in `log_nodes`; writes join the caller's transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, level: int, index: int) -> bytes:
        row = self._conn.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise NodeMissingError(f"log node ({level}, {index}) is missing")
        return bytes(row[0])

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        self._conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", items)

    def leaf_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM log_nodes WHERE level = 0").fetchone()
        return int(row[0])
