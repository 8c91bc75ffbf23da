"""A history page's inclusion proofs checked together (client/proofs.PageProofs).

The phone stops walking a proof at the first node where an earlier proof of the
page went on to the signed root with the same hash and siblings. That must give
exactly the answer of the full RFC 9162 check of each proof alone, in any order.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from strongroom.client.proofs import PageProofs
from strongroom.proof.merkle import MemoryNodeStore, MerkleLog, verify_inclusion
from strongroom.proof.sth import sign_tree_head

KEY = SigningKey(b"\x07" * 32)


def _tree(size: int) -> tuple[MerkleLog, MemoryNodeStore]:
    store = MemoryNodeStore()
    log = MerkleLog(store)
    log.append_many(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    return log, store


def _page(log: MerkleLog, size: int) -> PageProofs:
    return PageProofs(sign_tree_head(KEY, size, log.root(size), 1))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.permutations(range(n)))))
def test_every_honest_proof_passes_in_any_order(case: tuple[int, list[int]]) -> None:
    size, order = case
    log, store = _tree(size)
    page = _page(log, size)
    for index in order:
        assert page.verify(store.get(0, index), index, log.inclusion_proof(index, size))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(2, 200).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, n - 1), max_size=12),  # proven first, honestly
            st.integers(0, n - 1),  # the forged one
            st.integers(0, n - 1),
            st.sampled_from(["leaf", "index", "sibling", "short", "swap"]),
        )
    )
)
def test_a_forged_proof_is_refused_whatever_was_proven_before(
    case: tuple[int, list[int], int, int, str],
) -> None:
    size, proven, index, other, how = case
    log, store = _tree(size)
    page = _page(log, size)
    for done in proven:
        assert page.verify(store.get(0, done), done, log.inclusion_proof(done, size))
    leaf, proof, at = store.get(0, index), list(log.inclusion_proof(index, size)), index
    if how == "leaf":  # another record's leaf claims this place
        leaf = hashlib.sha256(leaf).digest()
    elif how == "index":  # a genuine leaf and proof, placed at another index
        at = other if other != index else (index + 1) % size
    elif how == "sibling" and proof:  # one node of the path altered
        position = other % len(proof)
        proof[position] = hashlib.sha256(proof[position]).digest()
    elif how == "short" and proof:  # the path cut at its first node
        proof = proof[1:]
    elif how == "swap":  # the neighbour's leaf with this leaf's proof
        leaf = store.get(0, index ^ 1) if index ^ 1 < size else b"\x00" * 32
    accepted = page.verify(leaf, at, proof)
    # Whatever the page remembered: the same answer as the full check of this proof alone.
    assert accepted == verify_inclusion(leaf, at, size, proof, log.root(size))
    if how in ("leaf", "index", "swap"):
        assert not accepted


def test_a_neighbours_leaf_is_refused_once_the_shared_path_is_proven() -> None:
    # Leaves 4 and 5 share every node above their parent: once 4 is proven, the walk
    # for 5 stops there, and must still compare the hash it reached.
    log, store = _tree(8)
    page = _page(log, 8)
    assert page.verify(store.get(0, 4), 4, log.inclusion_proof(4, 8))
    forged = hashlib.sha256(b"not the record at 5").digest()
    assert not page.verify(forged, 5, log.inclusion_proof(5, 8))
    assert not page.verify(store.get(0, 4), 5, log.inclusion_proof(5, 8))
    assert page.verify(store.get(0, 5), 5, log.inclusion_proof(5, 8))


def test_a_page_under_another_root_is_refused() -> None:
    log, store = _tree(20)
    stale = _page(log, 19)  # the head of a smaller tree: every proof has another root
    assert not stale.verify(store.get(0, 3), 3, log.inclusion_proof(3, 20))
    assert not stale.verify(store.get(0, 19), 19, log.inclusion_proof(18, 19))
