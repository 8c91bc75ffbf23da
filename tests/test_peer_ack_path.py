"""The ack path of a busy phone costs per group commit, not per record.

A real box on loopback, a real phone over Noise, real SQLCipher: a burst of
pushes is committed in a few group commits; the acks of one commit leave the box
together (one transport message, not one per ack queued behind the one before
it), and the phone checks the box's signature on each new tree head once, not
once per ack. Every ack is still checked (inclusion proof, consistency proof).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import peer_helpers
from e2e_helpers import Clock, message, pair_by_qr, prepare_data_dir, start_box
from strongroom.client import proofs as client_proofs
from strongroom.client.link import BoxError
from strongroom.config import Limits
from strongroom.peer.frames import Direction, decode_frame
from strongroom.proof.sth import SignedTreeHead, verify_tree_head

PUSHES = 60


async def test_the_acks_of_a_group_commit_leave_together_and_each_head_is_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await start_box(await prepare_data_dir(tmp_path / "box"), clock=Clock())
    phone, _ = await pair_by_qr(running, "Pixel", "maitre.durand")
    try:
        committer = running.box.committer
        link = phone._link
        assert committer is not None and link is not None
        # What reaches the phone: transport messages, and the acks each one carries.
        acks_per_message: list[int] = []
        channel = link._channel
        open_message = channel.open_views  # the phone's reader opens views

        def counting_open(raw: bytes) -> list[memoryview]:
            frames = open_message(raw)
            types = [
                decode_frame(bytes(f), Direction.TO_PHONE, max_bytes=1 << 20).type for f in frames
            ]
            if "ack" in types:
                acks_per_message.append(types.count("ack"))
            return frames

        monkeypatch.setattr(channel, "open_views", counting_open)
        checked: list[SignedTreeHead] = []

        def counting_verify(head: SignedTreeHead, key: bytes) -> bool:
            checked.append(head)
            return verify_tree_head(head, key)

        # Every head signature the phone checks: its HeadChain and its AckVerifier share
        # one cache (client/proofs.VerifiedHeads), which makes the only call.
        monkeypatch.setattr(client_proofs, "verify_tree_head", counting_verify)
        batches_before = committer.batches
        acks = await phone.push_many(
            [message(f"m{n}", conv="c", sender="Me", n=n) for n in range(PUSHES)]
        )
        commits = committer.batches - batches_before
    finally:
        await phone.close()
    assert len(acks) == PUSHES and sum(acks_per_message) == PUSHES
    assert commits < PUSHES // 4  # the burst shared group commits
    # One transport message per commit's acks (a bundle holds ~150 acks), not one each.
    assert len(acks_per_message) <= commits
    heads = {ack.tree_head for ack in acks}
    # Each head's signature checked once in all (consistency check and acks), not per ack.
    assert len(checked) == len(heads) <= commits
    assert set(checked) == heads
    assert running.count("SELECT count(*) FROM records") == PUSHES
    await running.stop()


async def test_a_narrow_window_keeps_taking_pushes_acks_and_rejections_alike(
    tmp_path: Path,
) -> None:
    """Each push holds one of the connection's in-flight slots until its answer is
    written (the push chain, peer/chain.py): a slot never given back would stop the
    box reading this phone after `max_in_flight` pushes."""
    running = await peer_helpers.start_box(tmp_path / "box", limits=Limits(max_in_flight_frames=3))
    phone = await peer_helpers.paired_phone(running, "maitre.durand")
    try:
        link = phone._require_link()
        for round_ in range(4):
            records = [peer_helpers.message(f"r{round_} m{n}") for n in range(10)]
            acks = await asyncio.wait_for(phone.push_many(records), 30)
            assert len({ack.log_index for ack in acks}) == 10
            raw, _ = phone.sign(peer_helpers.message(f"r{round_} forged"))
            for _ in range(4):  # more rejections than slots
                with pytest.raises(BoxError) as refused:
                    await asyncio.wait_for(
                        link.request("push", {"record": raw, "sig": bytes(64)}), 30
                    )
                assert refused.value.code == "rejected"
    finally:
        await phone.close()
        await running.stop()
    assert running.count("SELECT count(*) FROM records") == 40
