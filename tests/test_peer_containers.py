"""Containers (capability "multi", protocol.md §4): to a phone that lists "multi" the
box sends the ~1 MiB batches of a download as one WebSocket message of several Noise
transport messages; a phone that does not list it gets one message each, as before.
A container the phone cannot read closes the connection with 4400. Real Noise
sessions; the end-to-end tests run a real box on loopback (real SQLCipher)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from peer_helpers import RunningBox, attachment_record, paired_phone, running_box
from strongroom.client import ConnectionLost, DeviceState, PhoneClient
from strongroom.noise import MAX_MESSAGE_LEN
from strongroom.peer import outbox
from strongroom.peer.channel import (
    MULTI_MAX_BYTES,
    MULTI_MESSAGES,
    ChannelError,
    SecureChannel,
    contain,
)
from strongroom.peer.connection import Connection
from test_peer_outbox import _channel_pair

box = pytest.fixture(running_box)


def _sealed(sender: SecureChannel, sizes: list[int]) -> tuple[list[bytes], list[bytes]]:
    """Frames of `sizes` bytes and the transport messages carrying them."""
    frames = [os.urandom(size) for size in sizes]
    return frames, [m for frame in frames for m in sender.seal(frame)]


def _container(messages: list[bytes]) -> bytes:
    return b"".join(len(m).to_bytes(2, "big") + m for m in messages)


def test_a_container_carries_up_to_16_messages_each_opened_as_if_it_came_alone() -> None:
    sender, receiver = _channel_pair()
    frames, messages = _sealed(sender, [60_000] * 20)
    sent = contain(messages)
    assert len(sent) == 2 and all(len(m) > MAX_MESSAGE_LEN for m in sent)
    assert len(sent[0]) == MULTI_MESSAGES * (2 + len(messages[0]))
    opened = [bytes(f) for m in sent for f in receiver.open_message(m, containers=True)]
    assert opened == frames


def test_messages_no_larger_together_than_one_transport_message_leave_one_by_one() -> None:
    sender, receiver = _channel_pair()
    frames, messages = _sealed(sender, [100, 2_000, 30_000])
    assert contain(messages) == messages
    assert [bytes(f) for m in messages for f in receiver.open_message(m, False)] == frames


def test_the_documented_example_is_what_is_sent() -> None:
    first, second = os.urandom(40_000), os.urandom(30_000)
    [container] = contain([first, second])
    assert len(container) == 70_004
    assert container == bytes.fromhex("9c40") + first + bytes.fromhex("7530") + second


def _hostile(case: str, sender: SecureChannel) -> bytes:
    """A WebSocket message from the box that a phone must refuse."""
    _, messages = _sealed(sender, [40_000, 40_000, 30_000])
    good = _container(messages)
    if case == "length overruns":
        return good[:-1]
    if case == "trailing byte":
        return good + b"\x00"
    if case == "empty message":
        return _container(messages[:2]) + b"\x00\x00"
    if case == "message shorter than a tag and a flag":
        return _container(messages[:2]) + b"\x00\x10" + bytes(16)
    if case == "one message":
        [whole] = sender.seal(os.urandom(MAX_MESSAGE_LEN - 17))
        return _container([whole])
    if case == "17 messages":
        _, small = _sealed(sender, [4_000] * 17)
        return _container(small)
    if case == "above the largest container":
        return bytes(MULTI_MAX_BYTES + 1)
    raise AssertionError(case)


HOSTILE = [
    "length overruns",
    "trailing byte",
    "empty message",
    "message shorter than a tag and a flag",
    "one message",
    "17 messages",
    "above the largest container",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_malformed_container_is_refused(case: str) -> None:
    sender, receiver = _channel_pair()
    with pytest.raises(ChannelError):
        receiver.open_message(_hostile(case, sender), containers=True)


def test_a_container_to_a_phone_that_did_not_list_multi_is_refused() -> None:
    sender, receiver = _channel_pair()
    _, messages = _sealed(sender, [40_000, 40_000])
    with pytest.raises(ChannelError):
        receiver.open_message(_container(messages), containers=False)


async def _phone_with_a_blob(box: RunningBox, size: int) -> tuple[bytes, bytes]:
    old = await paired_phone(box, "claire", "ancien")
    data = os.urandom(size)
    ack = await old.upload_attachment(data)
    await old.push(attachment_record("m-1", ack.ref, len(data)))
    await old.close()
    return data, ack.ref


async def _new_phone(box: RunningBox, containers: bool) -> tuple[PhoneClient, list[int]]:
    """A new phone of claire (listing "multi" or not) and the sizes of the WebSocket
    messages it receives from now on."""
    phone = PhoneClient(DeviceState.generate("nouveau", "claire"))
    phone.containers = containers
    await phone.pair_button(box.url, box.keys.fingerprint)
    ws = phone._require_link().ws
    sizes: list[int] = []
    receive = ws.receive

    async def measured(*args: Any, **kwargs: Any) -> aiohttp.WSMessage:
        msg = await receive(*args, **kwargs)
        if msg.type == aiohttp.WSMsgType.BINARY:
            sizes.append(len(msg.data))
        return msg

    ws.receive = measured  # type: ignore[method-assign]
    return phone, sizes


async def test_a_phone_listing_multi_gets_a_download_in_containers(
    box: RunningBox, tmp_path: Path
) -> None:
    data, sha256 = await _phone_with_a_blob(box, 5_000_000)
    phone, sizes = await _new_phone(box, containers=True)
    await phone.download_blob(sha256, tmp_path / "scan.pdf")
    await phone.close()
    assert (tmp_path / "scan.pdf").read_bytes() == data
    # 5 MB in ~1 MiB batches: a handful of WebSocket messages, not ~77.
    assert max(sizes) > MAX_MESSAGE_LEN + 1 and max(sizes) <= MULTI_MAX_BYTES
    assert len(sizes) <= 8


async def test_a_phone_from_before_containers_gets_one_transport_message_each(
    box: RunningBox, tmp_path: Path
) -> None:
    data, sha256 = await _phone_with_a_blob(box, 5_000_000)
    phone, sizes = await _new_phone(box, containers=False)
    assert "multi" not in phone.box_hello["caps"]  # the box does not announce it either
    await phone.download_blob(sha256, tmp_path / "scan.pdf")
    await phone.close()
    assert (tmp_path / "scan.pdf").read_bytes() == data
    assert max(sizes) <= MAX_MESSAGE_LEN and len(sizes) >= 5_000_000 // MAX_MESSAGE_LEN


async def test_a_phone_refuses_a_bad_container_and_closes_with_4400(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, sha256 = await _phone_with_a_blob(box, 3_000_000)
    closes: list[int | None] = []
    closed = asyncio.Event()
    run = Connection.run

    async def observed(self: Connection) -> None:
        try:
            await run(self)
        finally:  # the box cancels a handler whose socket is gone
            closes.append(self.ws.close_code)
            closed.set()

    def overrunning(messages: list[bytes]) -> list[bytes]:  # a box gone wrong
        return [m + b"\x00" if len(m) > MAX_MESSAGE_LEN else m for m in contain(messages)]

    monkeypatch.setattr(Connection, "run", observed)
    phone, _ = await _new_phone(box, containers=True)
    monkeypatch.setattr(outbox, "contain", overrunning)
    with pytest.raises(ConnectionLost, match="rejected"):
        await phone.download_blob(sha256, tmp_path / "scan.pdf")
    await phone.close()
    assert not (tmp_path / "scan.pdf").exists()
    await asyncio.wait_for(closed.wait(), 5)
    assert closes == [4400]
    assert len(data) == 3_000_000
