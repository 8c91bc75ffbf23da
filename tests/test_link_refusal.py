"""A phone refuses a transport message from the box that does not authenticate (a
flipped byte on the way, a box gone wrong): the download fails at once with nothing
under its final name, and the phone closes with 4400 like the box does (protocol.md
§4, §10.2). Real box on loopback, real Noise, real SQLCipher."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from peer_helpers import RunningBox, attachment_record, paired_phone, running_box
from strongroom.client import ConnectionLost
from strongroom.peer.blob_sender import Batch, BlobFrames
from strongroom.peer.channel import SecureChannel
from strongroom.peer.connection import Connection

box = pytest.fixture(running_box)


async def test_a_forged_message_from_the_box_is_refused_with_4400(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await paired_phone(box, "claire", "ancien")
    data = os.urandom(3_000_000)
    ack = await old.upload_attachment(data)
    await old.push(attachment_record("m-1", ack.ref, len(data)))
    await old.close()

    closes: list[int | None] = []
    closed = asyncio.Event()
    run, seal = Connection.run, BlobFrames.seal

    async def observed(self: Connection) -> None:
        try:
            await run(self)
        finally:  # the box cancels a handler whose socket is gone
            closes.append(self.ws.close_code)
            closed.set()

    def flipped(self: BlobFrames, channel: SecureChannel, batch: Batch) -> list[bytes | bytearray]:
        messages = list(seal(self, channel, batch))
        if len(messages) > 1:  # one byte of the second piece changed on its way
            second = bytearray(messages[1])  # (the frame header's room first: 4 bytes)
            second[100] ^= 0x01
            messages[1] = second
        return messages

    monkeypatch.setattr(Connection, "run", observed)
    new = await paired_phone(box, "claire", "nouveau")
    monkeypatch.setattr(BlobFrames, "seal", flipped)
    dest = tmp_path / "scan.pdf"
    with pytest.raises(ConnectionLost, match="rejected"):
        await new.download_blob(ack.ref, dest)
    await new.close()
    assert not dest.exists()
    await asyncio.wait_for(closed.wait(), 5)
    assert closes == [4400]
