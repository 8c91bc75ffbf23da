"""Consistency proofs for phones (protocol.md §6.3, RFC 9162 §2.1.4).

A phone that listed "consistency" in its hello caps gets, in every `ack` and
`history_page` that carries a tree head, a `consistency` field proving that
this head and the last one the phone saw belong to one append-only log:

    "consistency": {"size": S, "proof": [32-byte nodes]}

S is the size of the head the phone saw last on this session (at the start of
a session: the `known` size the phone sent in its first request). When S is at
most the new head's size the proof shows the new head extends size S; when the
new head is older (a history page read before an ack was sent) it shows the
newer head of size S extends it. The phone holds both roots, so it needs
nothing else, and a box that forks or rewinds its log cannot answer.

The chain is per session and follows the order frames leave the box: the
connection stamps head-bearing frames one at a time (`stamp`, under a lock),
so the S of each frame is the largest head sent before it on this session.
"""

from __future__ import annotations

from typing import Any

from strongroom.archive.db import Connection
from strongroom.archive.store import reader_log
from strongroom.peer.frames import Frame
from strongroom.peer.log_proofs import LogProofs, RunRead
from strongroom.proof.merkle import TreeSizeError

CAPABILITY = "consistency"
HEAD_FRAMES = frozenset({"ack", "history_page", "paired"})
CONSISTENCY_ROOM = 128 * 34 + 32  # the field's bytes at most (frames.CONSISTENCY)


class HeadChain:
    """What a session remembers to prove its next tree head to the phone."""

    def __init__(self, proofs: LogProofs | None = None) -> None:
        # Nodes shared by the sessions of one archive (peer/log_proofs.py); without
        # them every proof is read from the log.
        self.proofs = proofs
        self.wanted = False  # the phone listed "consistency" in its hello caps
        self._released = False  # the session ended (release): nothing is held again
        self.known: int | None = None  # the size the phone said it saw (first `known`)
        self.last_sent: int | None = None  # the largest head sent on this session
        # The size the phone saw when this box's log is shorter (restored from an
        # older backup, or rewound): the phone refuses the box until paired again.
        self.phone_ahead: int | None = None

    def want(self, wanted: bool) -> None:
        """The phone's hello said whether it wants proofs (it may come after a head was
        sent, e.g. the pairing's): the committer proves from this session's size too."""
        self.wanted = wanted and not self._released
        if self.proofs is None:
            return
        base = self.last_sent if self.last_sent is not None else self.known
        if self.wanted and base is not None:
            self.proofs.hold(self, base)
        elif not self.wanted:
            self.proofs.release(self)  # a later hello without "consistency" (review F3)

    def offer_known(self, size: Any) -> None:
        """A request's `known`: only the first one counts, before any head was sent."""
        if self.known is None and self.last_sent is None and isinstance(size, int):
            self.known = size
            if self.wanted and self.proofs is not None:
                self.proofs.hold(self, size)  # the committer proves the next head from it

    @staticmethod
    def carries_head(frame: Frame) -> bool:
        return frame.type in HEAD_FRAMES and isinstance(frame.body.get("tree_head"), dict)

    def stamp_now(self, frame: Frame) -> Frame | None:
        """`frame` stamped, when that needs no read of the log (the usual case: every
        ack of a group commit after the first carries the same head); None when the
        proof must be read (then `stamp`, in the same order)."""
        size = int(frame.body["tree_head"]["tree_size"])
        base = self.last_sent if self.last_sent is not None else self.known
        if not self.wanted or base is None or frame.type == "paired":
            self._sent(size)
            return frame
        proof: list[bytes] = []
        if base != size:
            # The usual case of a grown head: its proof from nodes already in memory.
            proofs = self.proofs
            cached = proofs.cached(base, size) if proofs is not None and base < size else None
            if cached is None:
                return None
            proof = cached
        self._sent(size)
        return self._with_proof(frame, base, proof)

    async def stamp(self, frame: Frame, run_read: RunRead) -> Frame:
        """`frame` with its consistency proof added (if the phone asked for them)."""
        stamped = self.stamp_now(frame)
        if stamped is not None:
            return stamped
        size = int(frame.body["tree_head"]["tree_size"])
        base = self.last_sent if self.last_sent is not None else self.known
        assert base is not None
        self._sent(size)
        low, high = sorted((base, size))
        if self.proofs is not None and high == size:  # up to the committed head sent now
            return self._with_proof(frame, base, await self.proofs.fetch(low, high, run_read))

        def read(conn: Connection) -> list[bytes] | None:
            try:
                return reader_log(conn).consistency_proof(low, high)
            except TreeSizeError:
                return None  # the phone saw a longer log than this box has: no proof exists

        proof = await run_read(read)
        if proof is None:
            self.phone_ahead = high
            return frame  # without the field, the phone refuses the box (§6.3)
        return self._with_proof(frame, base, proof)

    def _sent(self, size: int) -> None:
        """A head of `size` is sent: the next proof starts from the largest sent."""
        if self.last_sent is None or size > self.last_sent:
            self.last_sent = size
            if self.wanted and self.proofs is not None:
                self.proofs.hold(self, size)  # the committer proves the next head from it

    def release(self) -> None:
        """The session ended: the committer need not prove from its head any more.

        Final: a head stamped after it (the drain task may still finish a proof read
        for an ack queued before the end) holds nothing again (review N4)."""
        self.wanted = False
        self._released = True
        if self.proofs is not None:
            self.proofs.release(self)

    @staticmethod
    def _with_proof(frame: Frame, base: int, proof: list[bytes]) -> Frame:
        # "consistency" sorts after every other key of an ack (longest), so a
        # presorted ack stays in canonical order.
        body = {**frame.body, "consistency": {"size": base, "proof": proof}}
        # Built directly: dataclasses.replace re-reads every field by name (once per ack).
        return Frame(frame.type, frame.id, body, frame.presorted)
