"""The group committer's shared proofs are exactly the log's own proofs.

SharedProofs computes a batch's inclusion proofs together for speed; a phone
checks each against the signed root, so each must be the RFC 9162 audit path,
byte for byte, for any tree size and any set of leaves.
"""

from __future__ import annotations

import hashlib
from contextlib import closing

from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.archive import writes
from strongroom.archive.nodes import SharedProofs, SqlNodeStore
from strongroom.archive.store import Archive
from strongroom.proof.merkle import MemoryNodeStore, MerkleLog, TreeSizeError, verify_inclusion


def _log(size: int) -> tuple[MerkleLog, MemoryNodeStore]:
    store = MemoryNodeStore()
    log = MerkleLog(store)
    log.append_many(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    return log, store


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 700).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))))
def test_shared_proofs_equal_the_logs_proofs_at_every_past_size(case: tuple[int, int]) -> None:
    size, tree_size = case
    log, store = _log(size)
    shared = SharedProofs(store, tree_size)
    root = log.root(tree_size)
    # The leaves a batch acks (the right edge) and a sprinkling of older ones.
    indices = sorted({*range(max(0, tree_size - 70), tree_size), *range(0, tree_size, 37)})
    for index in indices:
        proof = shared.proof(index)
        assert proof == log.inclusion_proof(index, tree_size)
        leaf = store.get(0, index)
        assert verify_inclusion(leaf, index, tree_size, proof, root)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), min_size=1, max_size=60))
    )
)
def test_shared_proofs_in_any_order_equal_the_logs_proofs(case: tuple[int, list[int]]) -> None:
    """Each proof reuses the previous one's upper levels: any order, jumps and repeats
    included, must still give the RFC 9162 path."""
    size, indices = case
    log, store = _log(size)
    shared = SharedProofs(store, size)
    for index in indices:
        assert shared.proof(index) == log.inclusion_proof(index, size)


def test_an_index_outside_the_tree_is_refused() -> None:
    shared = SharedProofs(_log(5)[1], 5)
    for index in (-1, 5):
        try:
            shared.proof(index)
        except TreeSizeError:
            continue
        raise AssertionError(f"index {index} was accepted")


def test_proofs_of_consecutive_stored_leaves_read_their_nodes_by_blocks(archive: Archive) -> None:
    """An export of a conversation asks the proofs of runs of consecutive leaves:
    each proof's low siblings are new nodes, read from log_nodes one query each
    before. Read by blocks, the proofs are the same and the queries a few per block."""
    archive.write_batch([writes.audit("admin", "export", f"e-{i}") for i in range(600)])
    size = archive.log.size
    with closing(archive.reader()) as conn:
        log = MerkleLog(SqlNodeStore(conn))
        expected = [log.inclusion_proof(i, size) for i in range(100, 500)]
        queries: list[str] = []
        conn.set_trace_callback(lambda sql: queries.append(sql) if "log_nodes" in sql else None)
        shared = SharedProofs(SqlNodeStore(conn), size)
        assert [shared.proof(i) for i in range(100, 500)] == expected
        conn.set_trace_callback(None)
    # One query per node would be two or more per leaf (800 here).
    assert len(queries) < 100, len(queries)
