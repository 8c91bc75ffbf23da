"""The Merkle log's NodeStore on the archive's SQLCipher tables."""

from __future__ import annotations

from collections.abc import Iterable

from strongroom.archive.db import Connection
from strongroom.proof.merkle import TreeSizeError, node_hash, split_point
from strongroom.proof.node_store import NodeMissingError, NodeStore


class SqlNodeStore:
    """Perfect-subtree hashes in `log_nodes`; writes join the caller's transaction."""

    # Nodes never change once written, so reads are cached. Consecutive proofs
    # (one per record of a batch) share almost all their nodes.
    CACHE_ENTRIES = 1 << 16
    # Proofs of consecutive leaves (an export of a conversation, a restored page)
    # each miss their own low siblings: one query per node was two of a 10,000-record
    # export's 20,000 queries a record. When a level's misses come in order, the
    # aligned block of this many nodes around the miss is read in one query.
    BLOCK = 64
    NEAR = 4  # a miss this close to the level's previous one means "in order"

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[int, int], bytes] = {}
        self._last_miss: dict[int, int] = {}  # level -> index of its last miss

    def get(self, level: int, index: int) -> bytes:
        cached = self._cache.get((level, index))
        if cached is not None:
            return cached
        last = self._last_miss.get(level)
        self._last_miss[level] = index
        if last is not None and abs(index - last) <= self.NEAR:
            self._read_block(level, index)
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

    def _read_block(self, level: int, index: int) -> None:
        first = index - index % self.BLOCK
        rows = self._conn.execute(
            "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ?",
            (level, first, first + self.BLOCK),
        ).fetchall()
        if len(self._cache) + len(rows) >= self.CACHE_ENTRIES:
            self._cache.clear()
        for idx, value in rows:
            self._cache[(level, int(idx))] = bytes(value)

    def forget(self) -> None:
        """Drop cached nodes (after a rollback, or when the file was replaced)."""
        self._cache.clear()
        self._last_miss.clear()

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        rows = list(items)
        self._conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", rows)
        # The ack of each new leaf needs its proof right after this batch commits:
        # keep the new nodes so those proofs read nothing back from the database.
        # (A rollback calls forget(), so uncommitted nodes never outlive their batch.)
        if len(self._cache) + len(rows) >= self.CACHE_ENTRIES:
            self._cache.clear()
        for level, index, value in rows:
            self._cache[(level, index)] = value

    def leaf_count(self) -> int:
        # Leaves are contiguous from 0 (verify checks it), so the newest index
        # tells the size: one primary-key lookup, not a scan of a million rows.
        row = self._conn.execute("SELECT max(idx) FROM log_nodes WHERE level = 0").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1


class SharedProofs:
    """Inclusion proofs of many leaves against one tree size, sharing their work.

    The group committer needs one proof per record of a batch: consecutive new
    leaves on the right edge of the same tree. Their audit paths share most
    entries, and the entries on the right edge are not stored nodes but folds
    of several of them. Each subtree hash is computed once here and reused, so
    k proofs cost about k + log2(n)^2 hashes instead of k * log2(n)^2. The
    proofs are exactly `MerkleLog.inclusion_proof`'s (RFC 9162 2.1.3.1).
    """

    def __init__(self, store: NodeStore, tree_size: int) -> None:
        self._store = store
        self._size = tree_size
        self._ranges: dict[tuple[int, int], bytes] = {}
        # The last proof's descent from the root: (middle, went left, sibling) a level.
        self._steps: list[tuple[int, bool, bytes]] = []

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf `index` (0 <= index < tree size), bottom-up.

        `audit_path`'s descent, but the levels where `index` takes the same side as
        the previous proof's leaf keep that proof's siblings: consecutive leaves (a
        batch's acks, an export, a restored page) share all but their last few, and
        walking each from the root through the subtree cache was ~20 µs a proof."""
        if not 0 <= index < self._size:
            raise TreeSizeError(f"leaf index {index} is outside a tree of {self._size} leaves")
        steps = self._steps
        start, end = 0, self._size
        kept = 0
        for middle, left, _ in steps:
            if (index < middle) != left:
                break
            if left:
                end = middle
            else:
                start = middle
            kept += 1
        del steps[kept:]
        while end - start > 1:  # RFC 9162 2.1.3.1, as audit_path walks it
            middle = start + split_point(end - start)
            if index < middle:
                steps.append((middle, True, self._range_hash(middle, end)))
                end = middle
            else:
                steps.append((middle, False, self._range_hash(start, middle)))
                start = middle
        return [sibling for _, _, sibling in reversed(steps)]

    def _range_hash(self, start: int, end: int) -> bytes:
        width = end - start
        if width & (width - 1) == 0:  # a perfect subtree: one stored node
            return self._store.get(width.bit_length() - 1, start // width)
        known = self._ranges.get((start, end))
        if known is not None:
            return known
        # RFC 6962 splits off the largest power of two on the left.
        middle = start + split_point(width)
        value = node_hash(self._range_hash(start, middle), self._range_hash(middle, end))
        self._ranges[(start, end)] = value
        return value
