"""Consistency proofs for the heads the box sends, from log nodes cached across sessions.

Every ack and history page carries a proof that its head extends the one sent
before it on the session (head_chain.py). The first ack of each group commit on
each connection needs one, and ten phones ask for nearly the same proof after
every commit (from the previous head to the new one). A node of the log never
changes once committed (proof/node_store.py) and the heads the box sends are
committed, so the nodes read for one session's proof serve every other: the
first connection reads them on a reader thread, the others are answered from
memory on the event loop. The tree's size is the new head's own (no count of
the leaves is read): only a proof up to a head the box is sending comes here.

Each session that asks for proofs registers the size of the last head it was
sent (`hold`); the group committer proves every new head from those sizes
before it wakes the batch's waiters (GroupCommitter.held_sizes), so the first
ack of a batch is normally stamped at once. Any other size is read as above.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from strongroom.archive.db import Connection
from strongroom.proof.merkle import MerkleLog
from strongroom.proof.node_store import NodeMissingError

Node = tuple[int, int]  # (level, index)
RunRead = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


class _Missing(LookupError):
    """A node not in the cache, where no read is allowed."""


class _CachedNodes:
    """A read-only NodeStore over the shared cache; reads `conn` on a miss, if given."""

    def __init__(self, cache: LogProofs, conn: Connection | None, size: int) -> None:
        self._cache = cache
        self._conn = conn
        self._size = size

    def get(self, level: int, index: int) -> bytes:
        value = self._cache.nodes.get((level, index))
        if value is not None:
            return value
        if self._conn is None:
            raise _Missing((level, index))
        row = self._conn.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        if row is None:
            raise NodeMissingError(f"log node ({level}, {index}) is missing")
        value = bytes(row[0])
        self._cache.keep((level, index), value)
        return value

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        raise TypeError("a read-only view of the log")

    def leaf_count(self) -> int:
        return self._size


class LogProofs:
    """Committed log nodes kept for consistency proofs (one per archive: PeerService)."""

    LIMIT = 1 << 14  # nodes (~1.5 MiB); cleared when full, refilled by the next reads

    def __init__(self, known: Mapping[tuple[int, int], list[bytes]] | None = None) -> None:
        # Filled from reader threads, read on the event loop: single dict operations,
        # atomic under the GIL, of values that never change.
        self.nodes: dict[Node, bytes] = {}
        # (low, high) -> proof, from the group committer (its consecutive heads).
        self._known: Mapping[tuple[int, int], list[bytes]] = known if known is not None else {}
        self._reading: dict[tuple[int, int], asyncio.Future[list[bytes]]] = {}
        # session (its HeadChain) -> the size of the last head it was sent; written on
        # the event loop, copied whole (one C call under the GIL) by the committer.
        self._held: dict[object, int] = {}

    def hold(self, session: object, size: int) -> None:
        """`session`'s next proof will start from a head of `size`."""
        self._held[session] = size

    def release(self, session: object) -> None:
        """`session` has ended: its size is no longer proven ahead."""
        self._held.pop(session, None)

    def held_sizes(self) -> set[int]:
        """The distinct sizes the open sessions hold (the committer's thread)."""
        return set(self._held.copy().values())

    def keep(self, node: Node, value: bytes) -> None:
        if len(self.nodes) >= self.LIMIT:
            self.nodes.clear()
        self.nodes[node] = value

    def cached(self, low: int, high: int) -> list[bytes] | None:
        """The proof that the committed tree of size `high` extends the tree of size
        `low`, if every node it needs is in memory; None if some must be read."""
        known = self._known.get((low, high))
        if known is not None:
            return list(known)
        try:
            return MerkleLog(_CachedNodes(self, None, high)).consistency_proof(low, high)
        except _Missing:
            return None

    def read(self, conn: Connection, low: int, high: int) -> list[bytes]:
        """The same proof, reading missing nodes on `conn` (a reader thread's)."""
        return MerkleLog(_CachedNodes(self, conn, high)).consistency_proof(low, high)

    async def fetch(self, low: int, high: int, run_read: RunRead) -> list[bytes]:
        """The same proof read through `run_read` (the box's reader pool). Sessions that
        ask for one proof while it is being read share that read: right after a commit,
        every phone's connection wants the proof from the previous head to the new one."""
        key = (low, high)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(run_read(lambda conn: self.read(conn, low, high)))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        return await asyncio.shield(reading)

    def _read_done(self, key: tuple[int, int], done: asyncio.Future[list[bytes]]) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved here: every session waiting may have gone
