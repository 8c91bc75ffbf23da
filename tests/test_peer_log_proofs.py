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

from strongroom.archive import writes
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
