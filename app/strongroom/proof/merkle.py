"""RFC 6962 / RFC 9162 section 2 Merkle tree over SHA-256, and an append-only log.

Hashing (RFC 9162 2.1.1):

* ``leaf_hash(d) = SHA-256(0x00 || d)``
* ``node_hash(l, r) = SHA-256(0x01 || l || r)``
* the root of the empty tree is ``SHA-256("")``; for ``n > 1`` leaves the tree
  splits at ``k``, the largest power of two strictly below ``n``.

The verifiers (``verify_inclusion``, ``verify_consistency``) are the RFC 9162
2.1.3.2 and 2.1.4.2 algorithms, written as pure functions so an export
verifier can reuse them and so they can be checked line by line against the RFC.

``MerkleLog`` keeps only complete perfect subtrees in a ``NodeStore`` (see
``node_store``). Any subtree the RFC's recursion visits is either perfect (one
store read) or lies on the right edge of the tree, where it is rebuilt from the
at most log2(n) perfect subtrees that tile it. A proof therefore costs
O(log n) store reads whatever the tree size, and an append writes one leaf plus
on average one interior node.

SHA-256 comes from hashlib: the RFC fixes the hash, and the sealed exports must
be checkable with ``sha256sum``/``openssl``, which PyNaCl's hashes are not.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence

from strongroom.proof.node_store import MemoryNodeStore, NodeMissingError, NodeStore

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MemoryNodeStore",
    "MerkleLog",
    "Node",
    "NodeMissingError",
    "NodeStore",
    "TreeSizeError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int, bytes]


class TreeSizeError(ValueError):
    """A leaf index or tree size outside what the log holds (or an inverted range)."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def _fold_right(subtree_roots: Sequence[bytes]) -> bytes:
    """Root of a range tiled by perfect subtrees given largest (leftmost) first.

    RFC 6962 always splits off the largest power of two on the left, so the
    tiling's root is ``H(t0, H(t1, ... H(t_{k-2}, t_{k-1})))``.
    """
    root = subtree_roots[-1]
    for left in reversed(subtree_roots[:-1]):
        root = node_hash(left, root)
    return root


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a full list of leaf hashes, in O(n) time and O(log n) memory."""
    frontier: list[bytes] = []  # roots of the perfect subtrees tiling the prefix seen so far
    for count, leaf in enumerate(hashes):
        _check_hash(leaf, "leaf hash")
        carry = leaf
        position = count
        while position & 1:
            carry = node_hash(frontier.pop(), carry)
            position >>= 1
        frontier.append(carry)
    if not frontier:
        return EMPTY_ROOT
    return _fold_right(frontier)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` place ``leaf_hash`` at ``index`` under ``root``?"""
    if not 0 <= index < tree_size:
        return False
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    fn = index
    sn = tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the ``new_size`` tree an append-only extension of the old one?

    Two cases the RFC leaves to the caller are decided here: equal sizes are
    consistent iff the proof is empty and the roots are equal; growing from the
    empty tree is consistent iff the proof is empty and ``old_root`` is the
    empty-tree root.
    """
    if not 0 <= old_size <= new_size:
        return False
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    if old_size == 0:
        return len(proof) == 0 and old_root == EMPTY_ROOT
    if len(proof) == 0 or any(len(c) != HASH_SIZE for c in proof):
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two
        path.insert(0, old_root)
    fn = old_size - 1
    sn = new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def split_point(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (``size >= 2``)."""
    return 1 << ((size - 1).bit_length() - 1)


def audit_path(index: int, size: int, range_hash: Callable[[int, int], bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 audit path of leaf ``index`` (checked by the caller) in a
    tree of ``size`` leaves, with ``range_hash(start, end)`` giving subtree hashes."""
    path: list[bytes] = []
    start, end = 0, size
    # Descend from the root; siblings are collected top-down, the proof is bottom-up.
    while end - start > 1:
        middle = start + split_point(end - start)
        if index < middle:
            path.append(range_hash(middle, end))
            end = middle
        else:
            path.append(range_hash(start, middle))
            start = middle
    path.reverse()
    return path


class MerkleLog:
    """An append-only RFC 6962 log whose perfect subtrees live in a NodeStore.

    The log also keeps in memory the roots of the perfect subtrees tiling the
    current tree (at most log2(n) hashes), so the current root and every
    append need no store reads. Opening a log over an existing store reads
    those few nodes back.

    If the store's transaction is rolled back after ``append_many`` returned,
    the in-memory view is stale: call ``reload()`` (or build a new log).
    """

    def __init__(self, store: NodeStore) -> None:
        self._store = store
        self._size = 0
        self._frontier: list[bytes] = []
        self.reload()

    def reload(self) -> None:
        """Re-read the tree size and the right-edge subtree roots from the store."""
        size = self._store.leaf_count()
        if size < 0:
            raise NodeMissingError(f"store reports a negative leaf count {size}")
        frontier: list[bytes] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                frontier.append(self._store.get(level, start >> level))
                start += 1 << level
        self._size = size
        self._frontier = frontier

    @property
    def size(self) -> int:
        """Number of leaves in the log."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[Node]:
        """Append one leaf hash; see ``append_many``."""
        return self.append_many([leaf_hash])

    def append_many(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Append leaf hashes in order and write the new nodes with one ``put_many``.

        Returns the ``(level, index, hash)`` nodes created: each leaf, plus each
        interior node whose subtree the new leaves completed. If ``put_many``
        raises, the log is left unchanged.
        """
        created: list[Node] = []
        frontier = list(self._frontier)
        size = self._size
        for leaf in leaf_hashes:
            _check_hash(leaf, "leaf hash")
            created.append((0, size, leaf))
            carry = leaf
            level = 0
            position = size
            # Each trailing 1 bit of the old size is a left sibling now completed.
            while position & 1:
                carry = node_hash(frontier.pop(), carry)
                level += 1
                position >>= 1
                created.append((level, position, carry))
            frontier.append(carry)
            size += 1
        if created:
            self._store.put_many(created)
            self._frontier = frontier
            self._size = size
        return created

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree at ``size`` leaves (default: now); any past size is allowed."""
        if size is None or size == self._size:
            return _fold_right(self._frontier) if self._frontier else EMPTY_ROOT
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.3.1 audit path for leaf ``index`` in the tree of ``tree_size`` leaves."""
        size = self._size if tree_size is None else tree_size
        self._check_size(size)
        if not 0 <= index < size:
            raise TreeSizeError(f"leaf index {index} is outside a tree of {size} leaves")
        return audit_path(index, size, self._range_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 2.1.4.1 proof that the ``old_size`` tree is a prefix of ``new_size``.

        Empty when the sizes are equal or ``old_size`` is 0 (nothing to prove).
        """
        size = self._size if new_size is None else new_size
        self._check_size(size)
        if not 0 <= old_size <= size:
            raise TreeSizeError(f"old size {old_size} is not within 0..{size}")
        if old_size in (0, size):
            return []
        path: list[bytes] = []
        start, end = 0, size
        complete = True  # RFC's "b": the current subtree is exactly an old-tree subtree
        while end != old_size:
            middle = start + split_point(end - start)
            if old_size <= middle:
                path.append(self._range_hash(middle, end))
                end = middle
            else:
                path.append(self._range_hash(start, middle))
                start = middle
                complete = False
        if not complete:
            path.append(self._range_hash(start, end))
        path.reverse()
        return path

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise TreeSizeError(f"tree size {size} is outside 0..{self._size}")

    def _range_hash(self, start: int, end: int) -> bytes:
        """Hash of the RFC subtree over leaves [start, end), from stored perfect subtrees.

        Subtrees reached by the RFC recursion start at a multiple of the largest
        power of two in their size, so tiling the range greedily from the left
        by decreasing powers of two lands every tile on a stored node.
        """
        tiles: list[bytes] = []
        position = start
        width = end - start
        for level in range(width.bit_length() - 1, -1, -1):
            if width >> level & 1:
                tiles.append(self._store.get(level, position >> level))
                position += 1 << level
        return _fold_right(tiles)
