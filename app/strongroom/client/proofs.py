"""Checking the box's acks: every ack of a record or blob proves it is in the signed log.

A phone never trusts an ack on its word. For each one it recomputes the log
leaf of what it sent, checks the inclusion proof up to the root of the tree
head, and checks the box's Ed25519 signature on that tree head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.archive.record import leaf_data
from strongroom.proof.merkle import HASH_SIZE, leaf_hash, node_hash, verify_inclusion
from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead, verify_tree_head

# The types of a tree head map's values, in VerifiedHeads.parse's key order.
_HEAD_TYPES = (str, str, int, int)


class ProofError(Exception):
    """An ack whose proof or tree-head signature does not verify: the box is not trusted."""


@dataclass(frozen=True)
class Ack:
    """A verified acknowledgement: `ref` (record id or blob SHA-256) is at `log_index`."""

    kind: str
    ref: bytes
    log_index: int
    at: int
    tree_head: SignedTreeHead
    proof: tuple[bytes, ...]
    duplicate: bool


class VerifiedHeads:
    """Tree heads whose box signature this phone already checked (a small cache).

    The phone's HeadChain and its AckVerifier share one: the reply of a push is
    checked by both (the consistency proof, then the inclusion proof), and the
    signature of a new head, an Ed25519 verify, is most of a phone's cost per ack.
    """

    def __init__(self, box_sign_public: bytes, size: int = 64) -> None:
        self._key = box_sign_public
        self._size = size  # heads change with every batch: the last few are enough
        self._good: dict[SignedTreeHead, None] = {}
        self._last: tuple[tuple[Any, ...], SignedTreeHead] | None = None  # parse's memo

    def parse(self, data: Any) -> SignedTreeHead:
        """`SignedTreeHead.from_dict(data)`, remembering the last head parsed.

        The acks of one group commit carry the same head, and a phone reads each
        ack's head twice (its head chain, then its inclusion proof): an equal map
        is the same head. Equal only with the exact types from_dict accepts (True
        equals 1, and from_dict refuses it), so the memo answers as from_dict would.
        """
        if type(data) is dict and len(data) == 4:
            key = (
                data.get("root_hash"),
                data.get("signature"),
                data.get("tree_size"),
                data.get("timestamp_ms"),
            )
            last = self._last
            if last is not None and key == last[0] and tuple(map(type, key)) == _HEAD_TYPES:
                return last[1]
            head = SignedTreeHead.from_dict(data)
            self._last = (key, head)
            return head
        return SignedTreeHead.from_dict(data)

    def signed(self, head: SignedTreeHead) -> bool:
        """Whether the box signed `head` (checked once, then remembered)."""
        if head in self._good:
            return True
        if not verify_tree_head(head, self._key):
            return False
        self._good[head] = None
        if len(self._good) > self._size:
            del self._good[next(iter(self._good))]
        return True


class AckVerifier:
    """Verifies acks against one box key, remembering tree heads it already checked."""

    def __init__(self, box_sign_public: bytes, heads: VerifiedHeads | None = None) -> None:
        self._heads = heads if heads is not None else VerifiedHeads(box_sign_public)

    def tree_head(self, data: Any) -> SignedTreeHead:
        """The tree head `data` describes, once its box signature is checked (cached)."""
        return self._head(data)

    def _head(self, data: Any) -> SignedTreeHead:
        try:
            head = self._heads.parse(data)
        except MalformedTreeHeadError as exc:
            raise ProofError(f"malformed tree head: {exc}") from exc
        if not self._heads.signed(head):
            raise ProofError("the tree head is not signed by the box")
        return head

    def verify(self, body: Mapping[str, Any], *, kind: str, leaf_kind: str, ref: bytes) -> Ack:
        """Check an `ack` body for `ref`, logged as a leaf of kind `leaf_kind`."""
        if body.get("kind") != kind or body.get("ref") != ref:
            raise ProofError("the ack is for something else")
        try:
            index, at, proof = int(body["log_index"]), int(body["at"]), list(body["proof"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError("the ack lacks its log position or proof") from exc
        head = self._head(body.get("tree_head"))
        leaf = leaf_hash(leaf_data(leaf_kind, ref, at))
        if not verify_inclusion(leaf, index, head.tree_size, proof, head.root_hash):
            raise ProofError(f"the inclusion proof for log index {index} does not verify")
        return Ack(kind, ref, index, at, head, tuple(proof), bool(body.get("duplicate", False)))


class PageProofs:
    """Inclusion proofs of many leaves under one checked tree head (a history page).

    Each proof is walked from its leaf up as RFC 9162 2.1.3.2 says, but the walk
    stops at the first node where an earlier proof of the page already went on
    to the head's root with the same hash and the same remaining siblings: from
    there the full walk could only repeat that computation. The walk's (fn, sn)
    names one subtree of this tree, so the answer is exactly the full check's.
    Neighbouring records share all but their lowest nodes, so a page costs about
    two hashes per record instead of one per level of the tree.
    """

    def __init__(self, head: SignedTreeHead) -> None:
        self.head = head
        # (fn, sn) -> (the hash there, the siblings that carried it to the root)
        self._proven: dict[tuple[int, int], tuple[bytes, tuple[Any, ...]]] = {}

    def verify(self, leaf: bytes, index: int, proof: Sequence[Any]) -> bool:
        """Whether `proof` places `leaf` at `index` under the head's root."""
        size, root = self.head.tree_size, self.head.root_hash
        if not 0 <= index < size or len(leaf) != HASH_SIZE:
            return False
        path = tuple(proof)
        fn, sn, r = index, size - 1, leaf
        walked: list[tuple[tuple[int, int], bytes, int]] = []
        for k, p in enumerate(path):
            known = self._proven.get((fn, sn))
            if known is not None:
                return known[0] == r and known[1] == path[k:] and self._remember(walked, path)
            walked.append(((fn, sn), r, k))
            if sn == 0 or not isinstance(p, bytes) or len(p) != HASH_SIZE:
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
        return sn == 0 and r == root and self._remember(walked, path)

    def _remember(
        self, walked: list[tuple[tuple[int, int], bytes, int]], path: tuple[Any, ...]
    ) -> bool:
        for state, node, k in walked:
            self._proven[state] = (node, path[k:])
        return True


def record_id(record: bytes) -> bytes:
    """A record's id: SHA-256 of its canonical CBOR bytes."""
    return hashlib.sha256(record).digest()
