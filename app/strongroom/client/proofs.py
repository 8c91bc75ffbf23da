"""Checking the box's acks: every ack of a record or blob proves it is in the signed log.

A phone never trusts an ack on its word. For each one it recomputes the log
leaf of what it sent, checks the inclusion proof up to the root of the tree
head, and checks the box's Ed25519 signature on that tree head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strongroom.archive.record import leaf_data
from strongroom.proof.merkle import leaf_hash, verify_inclusion
from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead, verify_tree_head


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


class AckVerifier:
    """Verifies acks against one box key, remembering tree heads it already checked."""

    def __init__(self, box_sign_public: bytes) -> None:
        self._key = box_sign_public
        self._good_heads: dict[SignedTreeHead, None] = {}

    def _head(self, data: Any) -> SignedTreeHead:
        try:
            head = SignedTreeHead.from_dict(data)
        except MalformedTreeHeadError as exc:
            raise ProofError(f"malformed tree head: {exc}") from exc
        if head not in self._good_heads:
            if not verify_tree_head(head, self._key):
                raise ProofError("the tree head is not signed by the box")
            self._good_heads[head] = None
            if len(self._good_heads) > 64:  # a small cache: heads change with every batch
                del self._good_heads[next(iter(self._good_heads))]
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


def record_id(record: bytes) -> bytes:
    """A record's id: SHA-256 of its canonical CBOR bytes."""
    return hashlib.sha256(record).digest()
