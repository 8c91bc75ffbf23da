"""The Merkle log's NodeStore on the archive's SQLCipher tables."""

from __future__ import annotations

from collections.abc import Iterable

from strongroom.archive.db import Connection
from strongroom.proof.node_store import NodeMissingError


class SqlNodeStore:
    """Perfect-subtree hashes in `log_nodes`; writes join the caller's transaction."""

    # Nodes never change once written, so reads are cached. Consecutive proofs
    # (one per record of a batch) share almost all their nodes.
    CACHE_ENTRIES = 1 << 16

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        cached = self._cache.get((level, index))
        if cached is not None:
            return cached
        row = self._conn.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise NodeMissingError(f"log node ({level}, {index}) is missing")
        if len(self._cache) >= self.CACHE_ENTRIES:
            self._cache.clear()
        value = self._cache[(level, index)] = bytes(row[0])
        return value

    def forget(self) -> None:
        """Drop cached nodes (after a rollback, or when the file was replaced)."""
        self._cache.clear()

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        self._conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", items)

    def leaf_count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM log_nodes WHERE level = 0").fetchone()
        return int(row[0])
