"""Consistency proofs from log nodes shared by every session of a box.

A real SQLCipher archive whose log grows batch by batch, as the group committer
grows it: the proofs LogProofs gives are exactly the log's own (RFC 9162
§2.1.4.1) between every pair of signed heads, they verify against the heads'
roots, and once one session has read a proof's nodes another session gets the
same proof from memory, with no read (no thread hop) at all.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

from strongroom.archive import writes
from strongroom.archive.committer import KEPT_PROOFS, GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive, reader_log
from strongroom.identity import derive_box_keys
from strongroom.peer.frames import Frame
from strongroom.peer.head_chain import HeadChain
from strongroom.peer.log_proofs import LogProofs
from strongroom.proof.merkle import verify_consistency
from strongroom.proof.sth import SignedTreeHead


def _grown_archive(path: Path) -> tuple[Archive, list[SignedTreeHead]]:
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(path, keys.archive_key, keys.blob_key, keys.signing_key)
    heads = []
    for batch in range(14):  # batches of 1..14 leaves: sizes on and off powers of two
        archive.write_batch([writes.audit("admin", "x", f"{batch}-{i}") for i in range(batch + 1)])
        head = archive.latest_tree_head()
        assert head is not None
        heads.append(head)
    return archive, heads


def test_proofs_are_the_logs_own_and_a_second_session_gets_them_from_memory(
    tmp_path: Path,
) -> None:
    archive, heads = _grown_archive(tmp_path / "box")
    conn = archive.reader()
    try:
        for old, new in combinations(heads, 2):
            low, high = old.tree_size, new.tree_size
            first_session = LogProofs()
            assert first_session.cached(low, high) is None  # nothing read yet
            proof = first_session.read(conn, low, high)
            assert proof == reader_log(conn).consistency_proof(low, high)
            assert verify_consistency(low, high, old.root_hash, new.root_hash, proof)
            # Another session of the same box: answered from memory, same proof.
            assert first_session.cached(low, high) == proof
    finally:
        conn.close()
        archive.close()


def test_an_ack_on_a_grown_head_is_stamped_at_once_once_its_nodes_are_known(
    tmp_path: Path,
) -> None:
    archive, heads = _grown_archive(tmp_path / "box")
    old, new = heads[3], heads[9]
    proofs = LogProofs()
    sessions = [HeadChain(proofs), HeadChain(proofs)]
    for chain in sessions:
        chain.wanted = True
        chain.offer_known(old.tree_size)
    ack = Frame("ack", 1, {"kind": "record", "tree_head": new.to_dict()})
    assert sessions[0].stamp_now(ack) is None  # its proof must be read first
    conn = archive.reader()
    try:
        expected = proofs.read(conn, old.tree_size, new.tree_size)
    finally:
        conn.close()
        archive.close()
    stamped = sessions[1].stamp_now(ack)
    assert stamped is not None
    assert stamped.body["consistency"] == {"size": old.tree_size, "proof": expected}
    assert sessions[1].last_sent == new.tree_size


async def test_sessions_asking_for_one_proof_at_once_share_one_read(tmp_path: Path) -> None:
    # Right after a commit every phone's connection wants the proof from the previous
    # head to the new one: one read of the log serves them all.
    archive, heads = _grown_archive(tmp_path / "box")
    old, new = heads[5], heads[12]
    conn = archive.reader()
    reads: list[int] = []

    async def run_read(query: Callable[[Connection], Any]) -> Any:
        reads.append(1)
        await asyncio.sleep(0.01)  # a reader thread's time: the others ask meanwhile
        return query(conn)

    proofs = LogProofs()
    sessions = [HeadChain(proofs) for _ in range(10)]
    for chain in sessions:
        chain.wanted = True
        chain.offer_known(old.tree_size)
    ack = Frame("ack", 1, {"kind": "record", "tree_head": new.to_dict()})
    try:
        stamped = await asyncio.gather(*(chain.stamp(ack, run_read) for chain in sessions))
        expected = reader_log(conn).consistency_proof(old.tree_size, new.tree_size)
    finally:
        conn.close()
        archive.close()
    assert reads == [1]
    for frame in stamped:
        assert frame.body["consistency"] == {"size": old.tree_size, "proof": expected}


async def _batch(committer: GroupCommitter, tag: str, count: int) -> SignedTreeHead:
    outcomes = await asyncio.gather(
        *(committer.submit(writes.audit("admin", "x", f"{tag}-{i}")) for i in range(count))
    )
    heads = {outcome.tree_head for outcome in outcomes}
    assert len(heads) == 1 and None not in heads  # one batch: the committer was idle
    head = heads.pop()
    assert head is not None
    return head


def _chain(proofs: LogProofs, known: int) -> HeadChain:
    chain = HeadChain(proofs)
    chain.wanted = True  # the phone listed "consistency" (hello), then sent `known`
    chain.offer_known(known)
    return chain


async def test_the_group_committer_proves_each_batch_from_the_sizes_sessions_hold(
    tmp_path: Path,
) -> None:
    """The committer proves each batch's head from the sizes the sessions hold (the
    last head each was sent) before it wakes the batch's waiters: a session stamps
    the new batch's first ack at once, with the log's own proof, and nothing is read.
    A size no session holds (nor the previous batch's) is not proven there; a
    session whose head is older than the committer's proofs still gets the right
    proof, read from the log (the fallback)."""
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(tmp_path / "box", keys.archive_key, keys.blob_key, keys.signing_key)
    committer = GroupCommitter(archive)
    proofs = LogProofs(committer.consistency_proofs)
    committer.held_sizes = proofs.held_sizes  # as PeerService sets it
    committer.start()
    conn = archive.reader()

    async def run_read(query: Callable[[Connection], Any]) -> Any:
        return query(conn)

    try:
        first = await _batch(committer, "first", 3)
        assert committer.consistency_proofs == {}  # no session holds a size yet
        early = _chain(proofs, first.tree_size)  # connected after the first batch
        sessions = [_chain(proofs, first.tree_size) for _ in range(3)]
        heads = [first]
        for batch in range(6):
            new = await _batch(committer, f"b{batch}", batch + 1)
            heads.append(new)
            ack = Frame("ack", 1, {"kind": "record", "tree_head": new.to_dict()})
            for chain in sessions:  # acked every batch: their next base is `new`
                stamped = chain.stamp_now(ack)  # None would mean: read on a reader thread
                assert stamped is not None
                base = stamped.body["consistency"]["size"]
                proof = stamped.body["consistency"]["proof"]
                assert proof == archive.consistency_proof(base, new.tree_size)
                assert verify_consistency(
                    base, new.tree_size, heads[-2].root_hash, new.root_hash, proof
                )
        assert proofs.nodes == {}  # no node was read for any of them
        # Proven from: what the sessions held (the first head, then each previous
        # one), never from a size nobody held, e.g. the second head to the last.
        sizes = [head.tree_size for head in heads]
        assert set(committer.consistency_proofs) == {(sizes[0], new) for new in sizes[1:]} | {
            (old, new) for old, new in pairwise(sizes[1:])
        }
        assert (sizes[1], sizes[-1]) not in committer.consistency_proofs
        # `early` held the first head all along: its first ack is stamped at once.
        assert early.stamp_now(ack) is not None
        assert proofs.held_sizes() == {sizes[-1]}  # every session has the last head
        for chain in [early, *sessions]:
            chain.release()  # their connections closed
        assert proofs.held_sizes() == set()
        late = _chain(proofs, sizes[1])  # a phone whose last head nobody proved from
        assert late.stamp_now(ack) is None  # not among the committer's proofs
        stamped = await late.stamp(ack, run_read)
        proof = stamped.body["consistency"]["proof"]
        assert proof == archive.consistency_proof(sizes[1], sizes[-1])
        assert verify_consistency(
            sizes[1], sizes[-1], heads[1].root_hash, heads[-1].root_hash, proof
        )
        assert (sizes[1], sizes[-1]) not in committer.consistency_proofs
    finally:
        conn.close()
        committer.stop()
        archive.close()


async def test_the_committers_proofs_are_bounded(tmp_path: Path) -> None:
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(tmp_path / "box", keys.archive_key, keys.blob_key, keys.signing_key)
    committer = GroupCommitter(archive)
    committer.held_sizes = lambda: range(1, 40)  # 39 sessions, each at its own size
    committer.start()
    try:
        for batch in range(12):
            await _batch(committer, f"{batch}", 5)
        assert 0 < len(committer.consistency_proofs) <= KEPT_PROOFS
    finally:
        committer.stop()
        archive.close()


async def test_without_a_peer_service_the_committer_proves_nothing(tmp_path: Path) -> None:
    """The proofs are for phone sessions: a committer nobody asked (the growth
    benchmarks, the CLI's writes) spends nothing on them."""
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(tmp_path / "box", keys.archive_key, keys.blob_key, keys.signing_key)
    committer = GroupCommitter(archive)
    committer.start()
    try:
        for batch in range(4):
            await asyncio.gather(
                *(committer.submit(writes.audit("admin", "x", f"{batch}-{i}")) for i in range(3))
            )
        assert committer.consistency_proofs == {}
    finally:
        committer.stop()
        archive.close()


def test_a_session_sent_a_head_before_its_hello_is_proven_from_it(tmp_path: Path) -> None:
    """A pairing sends the `paired` head before the phone's hello says it wants proofs:
    once it does, the committer proves from that head too (not only from later ones),
    and a phone that did not ask costs the committer nothing."""
    archive, heads = _grown_archive(tmp_path / "box")
    archive.close()
    proofs = LogProofs()
    asking, silent = HeadChain(proofs), HeadChain(proofs)
    paired = Frame("paired", 1, {"tree_head": heads[2].to_dict()})
    for chain in (asking, silent):
        assert chain.stamp_now(paired) is not None
    assert proofs.held_sizes() == set()  # nobody asked yet
    asking.want(True)
    silent.want(False)
    assert proofs.held_sizes() == {heads[2].tree_size}
    ack = Frame("ack", 2, {"kind": "record", "tree_head": heads[5].to_dict()})
    assert silent.stamp_now(ack) is not None  # no proof wanted, nothing held
    assert proofs.held_sizes() == {heads[2].tree_size}


def test_a_released_session_holds_nothing_again(tmp_path: Path) -> None:
    """A session's end is final (review N4): a head stamped after it (the drain task
    finishing a proof read for an ack queued before the end) or a late hello does not
    put its size back among those the committer proves from on every batch."""
    archive, heads = _grown_archive(tmp_path / "box")
    archive.close()
    proofs = LogProofs()
    chain = HeadChain(proofs)
    chain.want(True)
    paired = Frame("paired", 1, {"tree_head": heads[2].to_dict()})
    assert chain.stamp_now(paired) is not None
    assert proofs.held_sizes() == {heads[2].tree_size}
    chain.release()
    assert proofs.held_sizes() == set()
    late = Frame("ack", 2, {"kind": "record", "tree_head": heads[5].to_dict()})
    assert chain.stamp_now(late) is not None
    chain.want(True)
    assert proofs.held_sizes() == set()


def test_a_hello_that_stops_asking_releases_the_held_size(tmp_path: Path) -> None:
    """A phone that asked for proofs, then says hello without "consistency": the
    committer no longer proves from its size on every batch (review F3)."""
    archive, heads = _grown_archive(tmp_path / "box")
    archive.close()
    proofs = LogProofs()
    chain = HeadChain(proofs)
    chain.want(True)
    chain.offer_known(heads[2].tree_size)
    assert proofs.held_sizes() == {heads[2].tree_size}
    chain.want(False)
    assert proofs.held_sizes() == set()
    chain.want(True)  # asks again: held again
    assert proofs.held_sizes() == {heads[2].tree_size}
