"""The phone's side of consistency proofs (protocol.md §6.3): the box's log only grows.

The phone keeps the last tree head it verified (`trusted`, saved in its state
file). Every later head the box shows it, in an ack or a history page, must
come with a consistency proof (RFC 9162 §2.1.4) between that head and the
trusted one; only then does the newer of the two become trusted. A box that
forked or rewound its log since (restored an old copy, rewrote a record)
cannot produce one, and the phone refuses it from then on: `ForkedLog`.

Frames are checked in the order they arrive (Link calls `check` before waking
whoever waits for the reply), which is the order the box chained them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from strongroom.client.link import Link
from strongroom.client.proofs import ProofError, VerifiedHeads
from strongroom.proof.merkle import verify_consistency
from strongroom.proof.sth import MalformedTreeHeadError, SignedTreeHead

CAPABILITY = "consistency"
# Requests whose replies carry a tree head: they tell the box the phone's last head.
KNOWN_REQUESTS = frozenset({"push", "history", "blob_begin", "blob_end"})


class ForkedLog(ProofError):
    """The box showed a tree head its earlier heads do not lead to: never trust it again."""


class HeadChain:
    """The last head this phone verified, and the check of every newer one against it."""

    def __init__(
        self,
        box_sign_public: bytes,
        trusted: SignedTreeHead | None = None,
        verified: VerifiedHeads | None = None,
    ) -> None:
        # Shared with the phone's AckVerifier: each new head's signature checked once.
        self.verified = verified if verified is not None else VerifiedHeads(box_sign_public)
        self.trusted = trusted
        self.active = False  # the box listed "consistency" in its hello caps
        self.refused: ForkedLog | None = None

    def known(self) -> int | None:
        """The `known` field of the next request (only once the box offers the proofs)."""
        if not self.active or self.trusted is None:
            return None
        return self.trusted.tree_size

    def check(self, body: Mapping[str, Any]) -> None:
        """Check the tree head of a reply against the trusted one; raise ProofError if not."""
        if self.refused is not None:
            raise self.refused
        try:
            head = self.verified.parse(body["tree_head"])
        except (MalformedTreeHeadError, KeyError) as exc:
            raise ProofError(f"malformed tree head: {exc}") from exc
        trusted = self.trusted
        # The acks of one group commit all carry the same head: its signature was
        # checked when it became the trusted one (Ed25519 is most of a phone's cost
        # per push). The consistency field is still checked below.
        if head != trusted and not self.verified.signed(head):
            raise ProofError("the tree head is not signed by the box")
        if trusted is None or not self.active:
            # No head to compare with (first pairing), or a box without the proofs:
            # only the signature can be checked.
            if trusted is None or head.tree_size > trusted.tree_size:
                self.trusted = head
            return
        proof = body.get("consistency")
        if not isinstance(proof, Mapping):
            self._refuse(f"the box sent the tree head of size {head.tree_size} without proof")
        elif proof.get("size") != trusted.tree_size:
            self._refuse(
                f"the box proved its head from size {proof.get('size')},"
                f" not from the head of size {trusted.tree_size} this phone saw last"
            )
        old, new = (trusted, head) if trusted.tree_size <= head.tree_size else (head, trusted)
        nodes = list(proof.get("proof", ()))
        if not verify_consistency(
            old.tree_size, new.tree_size, old.root_hash, new.root_hash, nodes
        ):
            self._refuse(
                f"the box forked its log: its head of size {head.tree_size} and the head of"
                f" size {trusted.tree_size} this phone saw are not one append-only log"
            )
        self.trusted = new

    def _refuse(self, why: str) -> NoReturn:
        self.refused = ForkedLog(why)
        raise self.refused


def watch_heads(link: Link, heads: HeadChain) -> None:
    """Have `link` send the phone's `known` size and check every head it receives."""
    link.known = heads.known
    link.known_requests = KNOWN_REQUESTS
    link.check_head = heads.check
