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
from itertools import combinations
from pathlib import Path
from typing import Any

from peer_helpers import message, paired_phone, start_box
from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
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


async def test_a_batch_committed_through_the_committer_is_acked_without_a_read(
    tmp_path: Path,
) -> None:
    # The committer reads each batch's consistency proof on its own thread, before the
    # acks leave: the acks are stamped from memory, no reader thread on the ack path.
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(tmp_path / "box", keys.archive_key, keys.blob_key, keys.signing_key)
    archive.write_batch([writes.audit("admin", "x", "first")])
    proofs = LogProofs()
    committer = GroupCommitter(archive)
    committer.on_grown = proofs.warm
    committer.start()
    try:
        for n in range(6):
            old = archive.latest_tree_head()
            assert old is not None
            chain = HeadChain(proofs)
            chain.wanted = True
            chain.offer_known(old.tree_size)
            ops = [writes.audit("admin", "x", f"{n}-{i}") for i in range(n + 1)]
            done = await asyncio.gather(*(committer.submit(op) for op in ops))
            new = done[-1].tree_head
            assert new is not None and new.tree_size > old.tree_size
            ack = Frame("ack", 1, {"kind": "record", "tree_head": new.to_dict()})
            stamped = chain.stamp_now(ack)
            assert stamped is not None, n  # from memory: nothing left to read
            proof = stamped.body["consistency"]["proof"]
            assert verify_consistency(
                old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof
            )
    finally:
        committer.stop()
        archive.close()


async def test_a_phones_acks_need_no_reader_thread(tmp_path: Path) -> None:
    """The journey: a paired phone pushes, each ack carries its consistency proof
    (checked by the phone), and the box reads none of them on a reader thread."""
    box = await start_box(tmp_path / "box")
    reads: list[int] = []
    run = box.service.readers.run

    async def counted(query: Callable[[Connection], Any]) -> Any:
        reads.append(1)
        return await run(query)

    box.service.readers.run = counted  # type: ignore[method-assign]
    try:
        phone = await paired_phone(box, "maitre.durand")
        try:
            size = (await phone.push(message("first"))).tree_head.tree_size
            before = len(reads)
            for n in range(5):
                ack = await phone.push(message(f"audience {n}"))
                assert ack.tree_head.tree_size == size + n + 1  # a grown head each time
        finally:
            await phone.close()
    finally:
        await box.stop()
    assert len(reads) == before
