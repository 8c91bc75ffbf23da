"""Where a Merkle log keeps the hashes of its complete perfect subtrees.

A node ``(level, index)`` is the root of the perfect subtree covering leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes.
A node is written exactly once, when its last leaf is appended, and never
changes afterwards: that is what makes the log append-only and lets proofs for
any past tree size be answered from the same nodes.
"""

from collections.abc import Iterable
from typing import Protocol


class NodeMissingError(LookupError):
    """The store lacks a node the tree size says must exist (a damaged store)."""


class NodeStore(Protocol):
    """Persistence for perfect-subtree hashes; the archive implements it on SQLCipher."""

    def get(self, level: int, index: int) -> bytes:
        """Return the node's 32-byte hash; raise NodeMissingError if absent."""
        ...

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        """Write ``(level, index, hash)`` nodes, all in the caller's transaction."""
        ...

    def leaf_count(self) -> int:
        """Number of level-0 nodes, i.e. the size of the stored tree."""
        ...


class MemoryNodeStore:
    """A NodeStore held in a dict: for tests, tools and exports built in memory."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self._leaves = 0

    def get(self, level: int, index: int) -> bytes:
        try:
            return self._nodes[(level, index)]
        except KeyError:
            raise NodeMissingError(f"no node at level {level}, index {index}") from None

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        for level, index, node in items:
            if (level, index) in self._nodes:
                # Nodes are immutable once written; a rewrite means a caller bug.
                raise ValueError(f"node at level {level}, index {index} already written")
            self._nodes[(level, index)] = node
            if level == 0:
                self._leaves += 1

    def leaf_count(self) -> int:
        return self._leaves
