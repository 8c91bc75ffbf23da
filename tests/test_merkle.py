"""The RFC 6962 Merkle log: roots, inclusion and consistency proofs, storage costs.

The reference functions below transcribe RFC 6962 section 2.1 (MTH, PATH,
PROOF/SUBPROOF) recursively over a plain list, independently of the module's
store-backed implementation, and the CT project's published vectors pin both.
"""

import hashlib
from collections.abc import Iterable
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.proof.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleLog,
    NodeMissingError,
    TreeSizeError,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------- reference (RFC 6962 2.1, naive)


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def ref_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: tuple[bytes, ...]) -> bytes:
    n = len(hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashes[0]
    k = ref_k(n)
    return ref_node(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: tuple[bytes, ...]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = ref_k(n)
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: tuple[bytes, ...], b: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if b else [ref_mth(hashes)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], b), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


def ref_proof(m: int, hashes: tuple[bytes, ...]) -> list[bytes]:
    return ref_subproof(m, hashes, True)


# ---------------------------------------------------------------- shared trees

MAX_SIZE = 300
LEAVES = tuple(ref_leaf(b"record %d" % i) for i in range(4097))


@cache
def ref_root(size: int) -> bytes:
    return ref_mth(LEAVES[:size])


@cache
def log_of(size: int) -> MerkleLog:
    """A log holding exactly the first ``size`` leaves (shared, never appended to)."""
    log = MerkleLog(MemoryNodeStore())
    log.append_many(LEAVES[:size])
    return log


def flip(value: bytes, position: int = 0) -> bytes:
    position %= len(value)
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.put_calls: list[list[tuple[int, int, bytes]]] = []

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return super().get(level, index)

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        batch = list(items)
        self.put_calls.append(batch)
        super().put_many(batch)


class FailingStore(MemoryNodeStore):
    fail = False

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        if self.fail:
            raise OSError("disk full")
        super().put_many(items)


hypothesis_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---------------------------------------------------------------- known answers


CT_LEAF_DATA = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
# certificate-transparency test vectors (RFC 6962 reference implementation).
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def ct_log() -> MerkleLog:
    log = MerkleLog(MemoryNodeStore())
    log.append_many(leaf_hash(d) for d in CT_LEAF_DATA)
    return log


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    expected = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert EMPTY_ROOT == expected
    assert root_from_leaf_hashes([]) == expected
    assert MerkleLog(MemoryNodeStore()).root() == expected


def test_hashes_use_rfc6962_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = b"L" * 32, b"R" * 32
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    # A leaf can never pose as an interior node with the same bytes.
    assert leaf_hash(left + right) != node_hash(left, right)


def test_two_and_three_leaf_roots_match_hand_computation() -> None:
    a, b, c = (hashlib.sha256(b"\x00" + d).digest() for d in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert root_from_leaf_hashes([a, b]) == ab
    assert root_from_leaf_hashes([a, b, c]) == hashlib.sha256(b"\x01" + ab + c).digest()


def test_roots_match_certificate_transparency_vectors() -> None:
    log = ct_log()
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert log.root(size).hex() == expected
        hashes = [leaf_hash(d) for d in CT_LEAF_DATA[:size]]
        assert root_from_leaf_hashes(hashes).hex() == expected


def test_proofs_match_certificate_transparency_vectors() -> None:
    log = ct_log()
    for (index, size), expected in CT_INCLUSION.items():
        assert [h.hex() for h in log.inclusion_proof(index, size)] == expected
    for (old, new), expected in CT_CONSISTENCY.items():
        assert [h.hex() for h in log.consistency_proof(old, new)] == expected
        proof = [bytes.fromhex(h) for h in expected]
        assert verify_consistency(old, new, log.root(old), log.root(new), proof)


# ---------------------------------------------------------------- roots


@hypothesis_settings
@given(size=st.integers(min_value=0, max_value=MAX_SIZE))
def test_root_at_every_size_matches_the_recursive_definition(size: int) -> None:
    expected = ref_root(size)
    assert root_from_leaf_hashes(LEAVES[:size]) == expected
    assert log_of(size).root() == expected
    # A past size answered by a bigger log, from its stored subtrees.
    assert log_of(MAX_SIZE).root(size) == expected


@pytest.mark.parametrize("size", [1000, 4097])
def test_root_of_larger_trees_matches_the_recursive_definition(size: int) -> None:
    log = log_of(size)
    assert log.root() == ref_root(size) == root_from_leaf_hashes(LEAVES[:size])
    assert log.root(size - 1) == ref_root(size - 1)


# ---------------------------------------------------------------- inclusion


def test_every_inclusion_proof_of_small_trees_is_the_rfc_path_and_verifies() -> None:
    for size in range(1, 41):
        log, root = log_of(size), ref_root(size)
        for index in range(size):
            proof = log.inclusion_proof(index)
            assert proof == ref_path(index, LEAVES[:size])
            assert verify_inclusion(LEAVES[index], index, size, proof, root)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@hypothesis_settings
@given(case=index_and_size())
def test_inclusion_proof_verifies_at_current_and_past_sizes(case: tuple[int, int]) -> None:
    index, size = case
    root = ref_root(size)
    proof = log_of(MAX_SIZE).inclusion_proof(index, size)
    assert proof == ref_path(index, LEAVES[:size])
    assert log_of(size).inclusion_proof(index) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, root)


@hypothesis_settings
@given(
    case=index_and_size(), other=st.integers(min_value=0, max_value=MAX_SIZE + 2), data=st.data()
)
def test_tampered_inclusion_claims_are_rejected(
    case: tuple[int, int], other: int, data: st.DataObject
) -> None:
    index, size = case
    root = ref_root(size)
    leaf = LEAVES[index]
    proof = log_of(size).inclusion_proof(index)
    assert verify_inclusion(leaf, index, size, proof, root)

    if other != index:
        assert not verify_inclusion(leaf, other, size, proof, root)
    assert not verify_inclusion(LEAVES[4000], index, size, proof, root)
    assert not verify_inclusion(flip(leaf, 31), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, flip(root, 7))
    assert not verify_inclusion(leaf, index, size, [*proof, LEAVES[0]], root)
    assert not verify_inclusion(leaf, index, size, [LEAVES[0], *proof], root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
        assert not verify_inclusion(leaf, index, size, proof[1:], root)
        which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        byte = data.draw(st.integers(min_value=0, max_value=31))
        bent = list(proof)
        bent[which] = flip(bent[which], byte)
        assert not verify_inclusion(leaf, index, size, bent, root)
        assert not verify_inclusion(leaf, index, size, [*proof[:-1], proof[-1][:31]], root)


@pytest.mark.parametrize("size", [1000, 4097])
def test_inclusion_proofs_in_larger_trees(size: int) -> None:
    log, root = log_of(size), ref_root(size)
    for index in sorted({0, 1, 511, 512, 513, 777, size // 2, size - 2, size - 1}):
        proof = log.inclusion_proof(index)
        assert proof == ref_path(index, LEAVES[:size])
        assert verify_inclusion(LEAVES[index], index, size, proof, root)
        assert not verify_inclusion(LEAVES[index], index, size, proof, ref_root(size - 1))


def test_inclusion_verifier_refuses_impossible_positions() -> None:
    root = ref_root(5)
    proof = log_of(5).inclusion_proof(4)
    assert not verify_inclusion(LEAVES[4], 5, 5, proof, root)
    assert not verify_inclusion(LEAVES[4], -1, 5, proof, root)
    assert not verify_inclusion(LEAVES[0], 0, 0, [], EMPTY_ROOT)


# ---------------------------------------------------------------- consistency


def test_every_consistency_proof_of_small_trees_is_the_rfc_proof_and_verifies() -> None:
    for new in range(1, 41):
        log = log_of(new)
        for old in range(1, new + 1):
            proof = log.consistency_proof(old)
            assert proof == ref_proof(old, LEAVES[:new])
            assert verify_consistency(old, new, ref_root(old), ref_root(new), proof)


@st.composite
def old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=2, max_value=MAX_SIZE))
    return draw(st.integers(min_value=1, max_value=new - 1)), new


@hypothesis_settings
@given(case=old_and_new())
def test_consistency_proof_verifies_at_current_and_past_sizes(case: tuple[int, int]) -> None:
    old, new = case
    proof = log_of(MAX_SIZE).consistency_proof(old, new)
    assert proof == ref_proof(old, LEAVES[:new])
    assert log_of(new).consistency_proof(old) == proof
    assert verify_consistency(old, new, ref_root(old), ref_root(new), proof)


@hypothesis_settings
@given(case=old_and_new(), data=st.data())
def test_tampered_consistency_claims_are_rejected(
    case: tuple[int, int], data: st.DataObject
) -> None:
    old, new = case
    old_root, new_root = ref_root(old), ref_root(new)
    proof = log_of(new).consistency_proof(old)
    assert verify_consistency(old, new, old_root, new_root, proof)

    assert not verify_consistency(old, new, flip(old_root, 3), new_root, proof)
    assert not verify_consistency(old, new, old_root, flip(new_root, 30), proof)
    assert not verify_consistency(old, new, new_root, old_root, proof)
    # A history rewritten after `old`: the new tree's first leaves differ.
    forged = MerkleLog(MemoryNodeStore())
    forged.append_many([LEAVES[4000], *LEAVES[1:new]])
    assert not verify_consistency(old, new, old_root, forged.root(), proof)
    assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, proof[1:])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, LEAVES[0]])
    assert not verify_consistency(old, new, old_root, new_root, [LEAVES[0], *proof])
    assert not verify_consistency(old, new, old_root, new_root, [])
    which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=31))
    bent = list(proof)
    bent[which] = flip(bent[which], byte)
    assert not verify_consistency(old, new, old_root, new_root, bent)


@pytest.mark.parametrize(("old", "new"), [(1, 1000), (999, 1000), (512, 4097), (4095, 4097)])
def test_consistency_proofs_in_larger_trees(old: int, new: int) -> None:
    proof = log_of(4097).consistency_proof(old, new)
    assert proof == ref_proof(old, LEAVES[:new])
    assert verify_consistency(old, new, ref_root(old), ref_root(new), proof)
    assert not verify_consistency(old, new, ref_root(old - 1), ref_root(new), proof)


def test_consistency_edge_cases() -> None:
    log = log_of(7)
    assert log.consistency_proof(7) == []
    assert log.consistency_proof(0) == []
    root7 = ref_root(7)
    assert verify_consistency(7, 7, root7, root7, [])
    assert not verify_consistency(7, 7, root7, ref_root(6), [])
    assert not verify_consistency(7, 7, root7, root7, [LEAVES[0]])
    assert verify_consistency(0, 7, EMPTY_ROOT, root7, [])
    assert not verify_consistency(0, 7, ref_root(1), root7, [])
    assert not verify_consistency(0, 7, EMPTY_ROOT, root7, [LEAVES[0]])
    assert not verify_consistency(7, 6, root7, ref_root(6), log.consistency_proof(6))


# ---------------------------------------------------------------- the log and its store


def test_log_refuses_sizes_and_indices_it_does_not_hold() -> None:
    log = log_of(10)
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(10)
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(-1)
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(3, 11)
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(3, 3)
    with pytest.raises(TreeSizeError):
        log.consistency_proof(5, 11)
    with pytest.raises(TreeSizeError):
        log.consistency_proof(6, 5)
    with pytest.raises(TreeSizeError):
        log.root(11)
    with pytest.raises(ValueError):
        MerkleLog(MemoryNodeStore()).append(b"short")


def test_append_many_returns_the_created_nodes_and_writes_them_in_one_call() -> None:
    store = CountingStore()
    log = MerkleLog(store)
    created = log.append_many(LEAVES[:13])
    assert store.put_calls == [created]
    # 13 leaves complete 6 + 3 + 1 subtrees of 2, 4 and 8 leaves.
    assert len(created) == 13 + 6 + 3 + 1
    for level, index, value in created:
        width = 1 << level
        assert value == ref_mth(LEAVES[index * width : (index + 1) * width])

    created = log.append(LEAVES[13])
    assert store.put_calls[-1] == created
    assert [(level, index) for level, index, _ in created] == [(0, 13), (1, 6)]
    assert log.size == 14
    assert log.root() == ref_root(14)


def test_appending_nothing_writes_nothing() -> None:
    store = CountingStore()
    assert MerkleLog(store).append_many([]) == []
    assert store.put_calls == []


def test_log_reopened_over_its_store_continues_where_it_stopped() -> None:
    store = MemoryNodeStore()
    first = MerkleLog(store)
    first.append_many(LEAVES[:77])
    reopened = MerkleLog(store)
    assert reopened.size == 77
    assert reopened.root() == ref_root(77)
    reopened.append_many(LEAVES[77:130])
    assert reopened.root() == ref_root(130)
    assert reopened.inclusion_proof(100) == ref_path(100, LEAVES[:130])
    assert reopened.consistency_proof(77) == ref_proof(77, LEAVES[:130])


def test_a_failed_store_write_leaves_the_log_unchanged() -> None:
    store = FailingStore()
    log = MerkleLog(store)
    log.append_many(LEAVES[:5])
    store.fail = True
    with pytest.raises(OSError):
        log.append_many(LEAVES[5:9])
    assert log.size == 5
    assert log.root() == ref_root(5)
    store.fail = False
    log.append_many(LEAVES[5:9])
    assert log.root() == ref_root(9)


class TransactionalStore:
    """A NodeStore whose writes, like the archive's, vanish if the transaction rolls back."""

    def __init__(self) -> None:
        self.committed: dict[tuple[int, int], bytes] = {}
        self.pending: dict[tuple[int, int], bytes] = {}

    def get(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key in self.pending:
            return self.pending[key]
        if key in self.committed:
            return self.committed[key]
        raise NodeMissingError(key)

    def put_many(self, items: Iterable[tuple[int, int, bytes]]) -> None:
        self.pending.update(((level, index), value) for level, index, value in items)

    def leaf_count(self) -> int:
        return sum(1 for level, _ in {**self.committed, **self.pending} if level == 0)

    def commit(self) -> None:
        self.committed.update(self.pending)
        self.pending.clear()

    def rollback(self) -> None:
        self.pending.clear()


def test_reload_forgets_appends_whose_transaction_rolled_back() -> None:
    store = TransactionalStore()
    log = MerkleLog(store)
    log.append_many(LEAVES[:6])
    store.commit()
    log.append_many(LEAVES[6:11])
    assert log.size == 11
    store.rollback()
    log.reload()
    assert log.size == 6
    assert log.root() == ref_root(6)
    log.append_many(LEAVES[6:9])
    store.commit()
    assert MerkleLog(store).root() == ref_root(9)


def test_a_store_missing_a_node_is_reported() -> None:
    store = MemoryNodeStore()
    store.put_many([(0, 0, LEAVES[0]), (0, 1, LEAVES[1])])  # level-1 node never written
    with pytest.raises(NodeMissingError):
        MerkleLog(store)


@pytest.mark.parametrize("size", [1000, 4097])
def test_proofs_cost_logarithmic_store_reads(size: int) -> None:
    store = CountingStore()
    log = MerkleLog(store)
    log.append_many(LEAVES[:size])
    bound = 2 * size.bit_length()
    for index in (0, 1, size // 3, size - 2, size - 1):
        store.reads = 0
        log.inclusion_proof(index)
        assert store.reads <= bound
    for old in (1, 3, size // 3, size - 1):
        store.reads = 0
        log.consistency_proof(old)
        assert store.reads <= bound
    for past in (1, size // 2 + 1, size - 1):
        store.reads = 0
        log.root(past)
        assert store.reads <= size.bit_length()
    store.reads = 0
    assert log.root() == ref_root(size)
    assert MerkleLog(store).size == size
    assert store.reads <= size.bit_length()
