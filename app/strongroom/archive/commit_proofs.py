"""A group commit's proofs, built on the committer's thread after its COMMIT.

Each logged op's inclusion proof against the batch's signed tree head, read in one
pass for the batch; and the consistency proofs from the tree sizes phone sessions
hold (`held_sizes`, set by the peer service: peer/log_proofs.py) and the previous
batch's, to the new head, written before the batch's waiters wake: a session's first
ack of a batch carries one, and no ack waits for a reader thread to read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from strongroom.archive.commit_jobs import Committed, CommittedOf, Job
from strongroom.archive.store import Archive
from strongroom.proof.sth import SignedTreeHead

log = logging.getLogger(__name__)

# Consistency proofs kept (old size, new size): a few batches' worth for every
# connected phone (~27 µs each to compute at 1M leaves, ~0.7 KiB).
KEPT_PROOFS = 256


class BatchProofs:
    """The committer's proofs. Filled on its thread; `consistency_proofs` is read on
    event loops (single dict operations)."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.held_sizes: Callable[[], Collection[int]] | None = None
        self.consistency_proofs: dict[tuple[int, int], list[bytes]] = {}
        self._previous_size = 0

    def outcomes(
        self, jobs: list[Job], results: list[Any], head: SignedTreeHead | None
    ) -> list[Committed | BaseException]:
        """Each op's outcome, with its inclusion proof when it was logged."""
        head = head or self.archive.latest_tree_head()
        # Each outcome is built once, with its proof (CommittedOf itself, not the
        # Committed alias: calling a subscripted generic costs a failed setattr per
        # object on a frozen dataclass, twice per record on this thread).
        proofs: dict[int, list[bytes] | BaseException] = {}  # position -> proof or failure
        wanted: list[tuple[int, int]] = []  # (position in jobs, log index) needing a proof
        for position, (job, result) in enumerate(zip(jobs, results, strict=True)):
            try:
                index = self._proof_index(job, result, head)
            except Exception as exc:  # e.g. a faulty log_index_of: its caller only
                proofs[position] = exc
                continue
            if index is not None:
                wanted.append((position, index))
        if wanted and head is not None:
            self._add_proofs(wanted, head, proofs)
        if head is not None:
            self._keep_consistency(head.tree_size)
        outcomes: list[Committed | BaseException] = []
        for position, result in enumerate(results):
            proof = proofs.get(position)
            if isinstance(proof, BaseException):
                outcomes.append(proof)
            else:
                outcomes.append(CommittedOf(result, head, proof))
        return outcomes

    def _add_proofs(
        self,
        wanted: list[tuple[int, int]],
        head: SignedTreeHead,
        proofs: dict[int, list[bytes] | BaseException],
    ) -> None:
        try:
            # One pass for the whole batch: the new leaves' paths share most nodes.
            found = self.archive.inclusion_proofs([i for _, i in wanted], head.tree_size)
        except Exception:
            # A damaged node store: find out whose proof fails, fail only those.
            for position, index in wanted:
                try:
                    proofs[position] = self.archive.inclusion_proof(index, head.tree_size)
                except Exception as exc:
                    proofs[position] = exc
            return
        for (position, _), proof in zip(wanted, found, strict=True):
            proofs[position] = proof

    def _keep_consistency(self, size: int) -> None:
        """Prove the new head of `size` from the sizes sessions hold, if any do."""
        previous, self._previous_size = self._previous_size, size
        held_sizes = self.held_sizes
        if held_sizes is None or previous == size:
            return  # no peer service, or nothing logged since
        kept = self.consistency_proofs
        try:
            held = held_sizes()
            if not held:
                return  # no session asks for consistency proofs
            for old in {*held, previous}:
                if 0 < old < size:
                    kept[(old, size)] = self.archive.consistency_proof(old, size)
        except Exception:  # a damaged node store: the sessions read it (and say why)
            log.exception("no consistency proof up to %d", size)
        while len(kept) > KEPT_PROOFS:  # the oldest first
            del kept[next(iter(kept))]

    @staticmethod
    def _proof_index(job: Job, result: Any, head: SignedTreeHead | None) -> int | None:
        if job.log_index_of is None or head is None or isinstance(result, BaseException):
            return None
        index = job.log_index_of(result)
        if index is None or not 0 <= index < head.tree_size:
            return None
        return index
