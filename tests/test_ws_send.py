"""The box's blob pieces written as whole WebSocket frames (peer/ws_send.py), and the
in-place encryption that builds them (primitives.encrypt_into, SecureChannel.seal_parts_into).

What a phone would notice: every message arrives whole and exact through aiohttp's
own client, whatever its size; a phone that stops reading stops the box (it does
not buffer the blob); and the bytes it opens are the ones `seal_parts` gives.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import nacl.utils
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from strongroom.noise import primitives
from strongroom.peer.blob_frames import BlobData, parse_blob_data
from strongroom.peer.blob_sender import BlobFrames, read_batch
from strongroom.peer.frames import BLOB_PIECE_BYTES
from strongroom.peer.outbox import Outbox
from strongroom.peer.ws_send import ROOM, FrameWriter
from test_peer_outbox import _channel_pair

Serve = Callable[[FrameWriter], Awaitable[None]]
SEALS = {"nacl._sodium": primitives._seal_into, "nacl.bindings": primitives._seal_copied}


@pytest.mark.parametrize("path", list(SEALS))
@pytest.mark.parametrize(("start", "size"), [(0, 0), (4, 1), (4, 65_519), (3, 1000)])
def test_encrypt_into_gives_what_encrypt_gives(path: str, start: int, size: int) -> None:
    key, plain = nacl.utils.random(32), os.urandom(size)
    buf = bytearray(os.urandom(start)) + plain + bytes(primitives.TAGLEN)
    before = bytes(buf[:start])
    SEALS[path](buf, start, size, key, b"\0\0\0\0" + (9).to_bytes(8, "little"), b"ad")
    assert bytes(buf[start:]) == primitives.encrypt(key, 9, b"ad", plain)
    assert bytes(buf[:start]) == before  # the frame header's room is left alone


def test_encrypt_into_refuses_a_buffer_without_room_for_the_tag() -> None:
    with pytest.raises(ValueError, match="no room"):
        primitives.encrypt_into(bytes(32), 0, b"", bytearray(20), 4, 10)


def test_without_the_private_binding_the_public_encrypt_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert primitives._bind_private_seal() is not None  # the pinned PyNaCl has it
    monkeypatch.setitem(sys.modules, "nacl._sodium", types.SimpleNamespace())
    assert primitives._bind_private_seal() is None


@pytest.mark.parametrize("parts", [[b""], [b"a"], [os.urandom(300), b"x"], [os.urandom(65_518)]])
def test_seal_parts_into_opens_as_seal_parts_does(parts: list[bytes]) -> None:
    sender, receiver = _channel_pair()
    (message,) = sender.seal_parts_into(parts, ROOM)
    assert bytes(message[:ROOM]) == bytes(ROOM)
    assert receiver.open(bytes(message[ROOM:])) == [b"".join(parts)]
    # The nonce moved on exactly as seal_parts moves it.
    assert receiver.open(sender.seal_parts(parts)[0]) == [b"".join(parts)]


def test_a_frame_larger_than_a_message_is_still_fragmented() -> None:
    sender, receiver = _channel_pair()
    frame = os.urandom(100_000)
    messages = sender.seal_parts_into([frame], ROOM)
    assert len(messages) == 2
    opened = [f for m in messages for f in receiver.open(bytes(m[ROOM:]))]
    assert opened == [frame]


# Frame lists as the box's acks come: one, a commit's worth, more than one bundle holds,
# and a frame too large to share a message (fragmented) between others.
_FRAME_LISTS = [
    [b"a"],
    [os.urandom(900) for _ in range(20)],
    [os.urandom(3000) for _ in range(40)],
    [b"x", os.urandom(100_000), b"y", b"z"],
    [os.urandom(65_515), b"after"],
]


@pytest.mark.parametrize("frames", _FRAME_LISTS)
def test_seal_many_into_opens_as_seal_many_does(frames: list[bytes]) -> None:
    sender, receiver = _channel_pair()
    buffers = sender.seal_many_into(frames, ROOM)
    assert all(bytes(buf[:ROOM]) == bytes(ROOM) for buf in buffers)
    assert [f for buf in buffers for f in receiver.open(bytes(buf[ROOM:]))] == frames
    # As many messages as seal_many makes, and the nonce moved on as it moves it.
    other, _ = _channel_pair()
    assert len(buffers) == len(other.seal_many(frames))
    assert receiver.open(sender.seal_many([b"next"])[0]) == [b"next"]


class _Reserved:
    """A reserved writer stand-in (FrameWriter's interface): keeps each buffer."""

    room = ROOM

    def __init__(self) -> None:
        self.buffers: list[bytearray] = []

    async def __call__(self, buf: bytearray) -> None:
        self.buffers.append(buf)


@pytest.mark.parametrize("bundling", [True, False])
async def test_an_outbox_with_a_reserved_writer_writes_each_message_there_once(
    bundling: bool,
) -> None:
    sender, receiver = _channel_pair()
    reserved = _Reserved()

    async def unreserved(message: bytes) -> None:
        raise AssertionError("a message went around the reserved writer")

    outbox = Outbox(sender, unreserved, reserved)
    outbox.bundling = bundling
    acks = [os.urandom(900) for _ in range(20)]  # a group commit's acks, one loop turn
    await asyncio.gather(*(outbox.send(ack) for ack in acks))
    assert len(reserved.buffers) == (1 if bundling else 20)
    opened = [f for buf in reserved.buffers for f in receiver.open(bytes(buf[ROOM:]))]
    assert opened == acks


async def _served(
    serve: Serve, compress: int = 0
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=70_000)
        await ws.prepare(request)
        await serve(FrameWriter(ws))
        await ws.receive()  # until the client closes
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        url = server.make_url("/")
        async with http.ws_connect(url, max_msg_size=70_000, compress=compress) as ws:
            yield ws


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535])
async def test_every_size_arrives_whole_through_aiohttp_s_client(size: int) -> None:
    message = os.urandom(size)
    raw: list[bool] = []

    async def serve(writer: FrameWriter) -> None:
        raw.append(writer.raw)
        await writer(bytearray(ROOM) + message)
        await writer(bytearray(ROOM) + b"after")

    async for ws in _served(serve):
        first, second = await ws.receive(), await ws.receive()
        assert (first.type, first.data) == (aiohttp.WSMsgType.BINARY, message)
        assert second.data == b"after"
    assert raw == [True]  # the pinned aiohttp: written whole, not by send_bytes


async def test_a_phone_that_stops_reading_stops_the_box() -> None:
    sent = 0
    stalled = asyncio.Event()

    async def serve(writer: FrameWriter) -> None:
        nonlocal sent
        for _ in range(4096):  # 256 MiB if nothing stopped it
            write = asyncio.ensure_future(writer(bytearray(ROOM + 65_535)))
            done, _ = await asyncio.wait([write], timeout=0.5)
            if not done:
                stalled.set()
                await write  # resumes once the phone reads again
            sent += 1

    async for ws in _served(serve):
        await asyncio.wait_for(stalled.wait(), 30)
        waiting = sent
        assert waiting < 1024  # the socket's buffers, not 64 MiB of blob
        received = 0
        while received < 4096:
            msg = await ws.receive()
            assert len(msg.data) == 65_535
            received += 1
    assert sent == 4096


async def test_a_phone_that_negotiated_compression_gets_aiohttp_s_own_frames() -> None:
    # Another client may ask for permessage-deflate (the reference phone does not):
    # the box then leaves the framing to aiohttp, and the message still arrives.
    message = os.urandom(65_535)
    raw: list[bool] = []

    async def serve(writer: FrameWriter) -> None:
        raw.append(writer.raw)
        await writer(bytearray(ROOM) + message)

    async for ws in _served(serve, compress=15):
        received = await ws.receive()
        assert received.data == message
    assert raw == [False]


async def test_without_aiohttp_s_writer_the_frames_go_through_send_bytes() -> None:
    sent: list[bytes] = []

    class StandIn:
        async def send_bytes(self, data: bytes | memoryview) -> None:
            sent.append(bytes(data))

    writer = FrameWriter(StandIn())
    assert not writer.raw
    await writer(bytearray(ROOM) + b"piece")
    assert sent == [b"piece"]


async def test_the_blob_stream_through_the_writer_is_the_blob() -> None:
    sender, receiver = _channel_pair()
    blob = os.urandom(5 * 65_536 + 7)
    chunks = iter([blob[i : i + 65_536] for i in range(0, len(blob), 65_536)])

    async def serve(writer: FrameWriter) -> None:
        outbox = Outbox(sender, _unused, writer)
        frames = BlobFrames(3, 0, outbox.room)
        while not frames.done:
            batch = read_batch(chunks)
            await outbox.send_sealed(functools.partial(frames.seal, batch=batch))

    pieces: list[BlobData] = []
    async for ws in _served(serve):
        while not pieces or not pieces[-1].end:
            msg = await ws.receive()
            for raw in receiver.open(msg.data):
                fields = parse_blob_data(raw)
                assert fields is not None and fields.request_id == 3
                pieces.append(fields)
    assert b"".join(bytes(p.data) for p in pieces) == blob
    assert [p.offset for p in pieces] == [i * BLOB_PIECE_BYTES for i in range(len(pieces))]


async def _unused(message: bytes) -> None:
    raise AssertionError("blob pieces go through the reserved writer")
