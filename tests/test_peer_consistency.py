"""Consistency proofs offered to phones (protocol.md §6.3): the reference client keeps the
last tree head it verified and refuses a box whose log was rolled back or forked since.

A real box on loopback, real Noise sessions, real SQLCipher files: the fork is made
the way it happens in life, by putting back an older copy of the data directory
(same keys, shorter log) and letting the box log other things after it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from e2e_helpers import Clock, E2EBox, message, pair_by_qr, prepare_data_dir, start_box
from strongroom.client import PhoneClient
from strongroom.client.heads import ForkedLog
from strongroom.client.proofs import ProofError
from strongroom.client.state import DeviceState
from strongroom.config import BoxConfig


async def grow_log(running: E2EBox, entries: int) -> None:
    for n in range(entries):
        await running.box.audit("admin", "settings.change", f"entry-{n}")


def latest_size(running: E2EBox) -> int:
    head = running.box.require_archive().latest_tree_head()
    assert head is not None
    return head.tree_size


async def test_every_head_a_phone_sees_extends_the_last_one(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    phone, paired = await pair_by_qr(running, "Pixel", "maitre.durand")
    seen: list[Mapping[str, Any]] = []
    try:
        assert phone.heads is not None and phone.heads.active
        assert phone.heads.trusted == paired.tree_head
        link = phone._link
        assert link is not None and link.check_head is not None
        check = link.check_head

        def record(body: Mapping[str, Any]) -> None:
            seen.append(body)
            check(body)

        link.check_head = record
        await phone.push_many([message(f"m{n}", conv="c", sender="Me", n=n) for n in range(12)])
        await grow_log(running, 5)  # the log grows between two acks the phone sees
        await phone.push(message("after", conv="c", sender="Me", n=99))
        items = await phone.restore_history()
        assert len(items) == 13
        # The box's committer proves its next head from the size this session holds.
        peers = running.box.peers
        assert peers is not None
        assert phone.heads.trusted is not None
        assert peers.log_proofs.held_sizes() == {phone.heads.trusted.tree_size}
    finally:
        await phone.close()
    for _ in range(100):  # the box sees the connection end, then forgets its size
        if not peers.log_proofs.held_sizes():
            break
        await asyncio.sleep(0.02)
    assert peers.log_proofs.held_sizes() == set()
    # Every ack and history page came with a proof from the head seen just before it.
    assert len(seen) >= 14 and all("consistency" in body for body in seen)
    sizes = [int(body["tree_head"]["tree_size"]) for body in seen]
    froms = [int(body["consistency"]["size"]) for body in seen]
    assert froms[0] == paired.tree_head.tree_size
    assert all(f <= max([paired.tree_head.tree_size, *sizes[:i]]) for i, f in enumerate(froms))
    assert phone.heads.trusted is not None
    assert phone.heads.trusted.tree_size == latest_size(running) == max(sizes)
    # The trusted head is kept with the phone's state for its next session.
    assert phone.state.last_head == phone.heads.trusted.to_dict()
    await running.stop()


async def test_a_phone_refuses_a_box_whose_log_was_rolled_back_or_forked(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    older_copy = tmp_path / "older-copy"
    state_file = tmp_path / "phone.json"
    running = await start_box(config, clock=Clock())
    phone, _ = await pair_by_qr(running, "Pixel", "maitre.durand")
    phone.state_path = state_file
    await phone.push(message("premier", conv="c", sender="Me", n=1))
    await phone.close()
    await running.stop()
    await asyncio.to_thread(shutil.copytree, config.data_dir, older_copy)

    # The phone goes on and sees a longer log.
    running = await start_box(config, clock=Clock())
    phone = PhoneClient(DeviceState.load(state_file), state_path=state_file, keepalive=False)
    await phone.connect(running.peer_url)
    for n in range(2, 6):
        await phone.push(message(f"suite {n}", conv="c", sender="Me", n=n))
    seen_size = latest_size(running)
    await phone.close()
    await running.stop()
    assert DeviceState.load(state_file).last_head is not None

    # The older copy is put back: same keys, the log rolled back.
    await asyncio.to_thread(shutil.rmtree, config.data_dir)
    await asyncio.to_thread(shutil.copytree, older_copy, config.data_dir)
    running = await start_box(BoxConfig(data_dir=config.data_dir, port=0), clock=Clock())
    try:
        assert latest_size(running) < seen_size
        rolled = PhoneClient(DeviceState.load(state_file), keepalive=False)
        await rolled.connect(running.peer_url)
        with pytest.raises(ForkedLog, match="without proof"):
            await rolled.push(message("perdu ?", conv="c", sender="Me", n=10))
        assert len(rolled.outbox) == 1  # not acknowledged: the phone keeps it
        await rolled.close()

        # It logs other things until its log is longer than the one the phone saw:
        # a fork. The box proves from the phone's head over its own tree, which fails.
        await grow_log(running, seen_size - latest_size(running) + 3)
        assert latest_size(running) > seen_size
        forked = PhoneClient(DeviceState.load(state_file), keepalive=False)
        await forked.connect(running.peer_url)
        with pytest.raises(ForkedLog, match="forked its log"):
            await forked.push(message("réécrit ?", conv="c", sender="Me", n=11))
        # Refused for good: history is not trusted either.
        with pytest.raises(ProofError):
            await forked.restore_history()
        await forked.close()

        # A phone that never saw the longer log (fresh pairing) has nothing to object to.
        fresh, _ = await pair_by_qr(running, "Nouveau", "dr.martin")
        ack = await fresh.push(message("bonjour", conv="d", sender="Dr", n=1))
        assert ack.log_index > 0
        await fresh.close()
    finally:
        await running.stop()


class OlderPhone(PhoneClient):
    """A phone from before consistency proofs: its hello does not list the capability."""

    async def _hello(self) -> None:
        link = self._require_link()
        reply = await link.request("hello", {"name": "old", "app": "old/1", "caps": ["mail"]})
        self.box_hello = reply.body
        link.set_window(int(reply.body["limits"]["max_in_flight"]))


async def test_a_phone_that_did_not_ask_gets_the_frames_it_knows(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    paired_phone, _ = await pair_by_qr(running, "Pixel", "maitre.durand")
    await paired_phone.close()
    phone = OlderPhone(paired_phone.state, keepalive=False)
    bodies: list[Mapping[str, Any]] = []
    try:
        await phone.connect(running.peer_url)
        assert "consistency" in phone.box_hello["caps"]  # offered, not asked for
        assert phone._link is not None
        phone._link.check_head = bodies.append
        await phone.push_many([message(f"m{n}", conv="c", sender="Me", n=n) for n in range(3)])
        await phone.restore_history()
    finally:
        await phone.close()
        await running.stop()
    assert len(bodies) == 4 and not any("consistency" in body for body in bodies)
