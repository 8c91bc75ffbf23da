"""Link.receive: a download's pieces handed to the phone's code as they are decrypted.

What a user would notice: a download whose receiver fails (a full disk, a piece out
of order) stops with that failure and the phone's connection keeps working; a
connection lost mid-download is reported as such, not as a hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from peer_helpers import RunningBox, attachment_record, message, paired_phone, running_box
from strongroom.client import ConnectionLost, PhoneClient, ProofError
from strongroom.client.attachments import _Pieces

box = pytest.fixture(running_box)


async def _stored(box: RunningBox, size: int) -> tuple[PhoneClient, bytes, bytes]:
    phone = await paired_phone(box, "claire")
    data = os.urandom(size)
    ack = await phone.upload_attachment(data)
    note = message("scan attached")
    await phone.push(note)
    await phone.push(attachment_record(note["id"], ack.ref, size))
    return phone, ack.ref, data


async def test_pieces_arrive_in_order_and_whole(box: RunningBox) -> None:
    phone, sha, data = await _stored(box, 3 << 20)
    received = bytearray()
    ends: list[bool] = []

    def piece(offset: int, chunk: bytes | memoryview, end: bool) -> None:
        assert offset == len(received)
        received.extend(chunk)
        ends.append(end)

    await phone._require_link().receive("blob_get", {"sha256": sha, "offset": 0}, piece)
    assert bytes(received) == data
    assert ends == [False] * (len(ends) - 1) + [True]
    await phone.close()


async def test_a_receiver_that_fails_stops_the_download_and_the_link_stays_usable(
    box: RunningBox,
) -> None:
    phone, sha, data = await _stored(box, 4 << 20)
    link = phone._require_link()
    taken = 0

    def full_disk(offset: int, chunk: bytes | memoryview, end: bool) -> None:
        nonlocal taken
        taken += 1
        if taken == 3:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await link.receive("blob_get", {"sha256": sha, "offset": 0}, full_disk)
    assert taken == 3  # the rest of that stream is not handed to it any more
    async with asyncio.timeout(10):
        await link.request("ping", {})
        assert await phone.download_blob(sha) == data
    await phone.close()


async def test_a_connection_lost_mid_download_is_reported(box: RunningBox) -> None:
    phone, sha, _ = await _stored(box, 4 << 20)
    link = phone._require_link()

    def piece(offset: int, chunk: bytes | memoryview, end: bool) -> None:
        link.drop()  # the phone loses its network after the first piece

    with pytest.raises(ConnectionLost):
        async with asyncio.timeout(10):
            await link.receive("blob_get", {"sha256": sha, "offset": 0}, piece)
    await phone.close()


def test_a_piece_at_another_offset_than_the_next_is_refused() -> None:
    pieces = _Pieces(None, hashlib.sha256(), 10)
    pieces.take(10, b"abc", False)
    with pytest.raises(ProofError, match="out of order"):
        pieces.take(12, b"d", False)  # overlaps what came (a replayed or forged piece)
