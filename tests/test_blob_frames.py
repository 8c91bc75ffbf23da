"""blob_data frames without cbor2 (peer/blob_frames.py): the box writes exactly what
encode_frame writes, and the phone's fast path accepts only what decode_frame accepts,
with the same values; anything else goes through decode_frame."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Sequence

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.client.link import _encoded as link_encoded
from strongroom.peer.blob_frames import (
    BlobChunk,
    BlobData,
    blob_chunk_parts,
    blob_data_parts,
    parse_blob_chunk,
    parse_blob_data,
)
from strongroom.peer.blob_sender import BlobFrames, read_batch
from strongroom.peer.frames import (
    BLOB_PIECE_BYTES,
    Direction,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
)
from strongroom.peer.outbox import Outbox
from strongroom.peer.request_id import MAX_REQUEST_ID
from test_peer_outbox import Wire, _channel_pair

_ids = st.one_of(st.integers(0, 30), st.integers(0, MAX_REQUEST_ID))
_offsets = st.one_of(
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]),
    st.integers(0, 2**63 - 1),
)
_data = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([0, 23, 24, 255, 256, BLOB_PIECE_BYTES]).map(bytes),
)


def _encoded(request_id: int, offset: int, data: bytes, end: bool) -> bytes:
    body = {"offset": offset, "data": data, "end": end}
    return encode_frame(Frame("blob_data", request_id, body))


def _decoded(raw: bytes) -> BlobData:
    frame = decode_frame(raw, Direction.TO_PHONE, max_bytes=1 << 20)
    assert frame.type == "blob_data"
    body = frame.body
    return BlobData(frame.id, body["offset"], body["data"], body["end"])


@settings(max_examples=300, deadline=None)
@given(_ids, _offsets, _data, st.booleans())
def test_the_box_writes_encode_frames_bytes_and_the_phone_reads_them_back(
    request_id: int, offset: int, data: bytes, end: bool
) -> None:
    before, after = blob_data_parts(request_id, offset, len(data), end)
    raw = before + data + after
    assert raw == _encoded(request_id, offset, data, end)
    assert parse_blob_data(raw) == BlobData(request_id, offset, data, end) == _decoded(raw)
    # The phone parses views of the decrypted message (SecureChannel.open_views).
    assert parse_blob_data(memoryview(raw)) == BlobData(request_id, offset, data, end)


@settings(max_examples=600, deadline=None)
@given(
    _ids,
    _offsets,
    st.binary(max_size=40),
    st.booleans(),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "cut", "insert", "drop"]),
            st.integers(0, 200),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_whatever_the_fast_path_accepts_decode_frame_accepts_with_the_same_values(
    request_id: int,
    offset: int,
    data: bytes,
    end: bool,
    edits: list[tuple[str, int, int]],
) -> None:
    raw = bytearray(_encoded(request_id, offset, data, end))
    for kind, where, value in edits:
        where %= len(raw) + 1
        if kind == "flip" and where < len(raw):
            raw[where] = value
        elif kind == "cut":
            del raw[where:]
        elif kind == "insert":
            raw.insert(where, value)
        elif kind == "drop" and where < len(raw):
            del raw[where]
    fast = parse_blob_data(bytes(raw))
    assert parse_blob_data(memoryview(raw)) == fast  # what the phone parses: views
    if fast is not None:
        assert fast == _decoded(bytes(raw))


def _chunk(request_id: int, offset: int, data: bytes) -> bytes:
    return encode_frame(Frame("blob_chunk", request_id, {"offset": offset, "data": data}))


def _decoded_chunk(raw: bytes) -> BlobChunk:
    frame = decode_frame(raw, Direction.TO_BOX, max_bytes=1 << 20)
    assert frame.type == "blob_chunk"
    return BlobChunk(frame.id, frame.body["offset"], frame.body["data"])


@settings(max_examples=300, deadline=None)
@given(_ids, _offsets, _data)
def test_the_phone_writes_blob_chunks_as_encode_frame_and_the_box_reads_them_back(
    request_id: int, offset: int, data: bytes
) -> None:
    before, after = blob_chunk_parts(request_id, offset, len(data))
    raw = before + data + after
    assert raw == _chunk(request_id, offset, data)
    body = {"offset": offset, "data": data}
    assert link_encoded(Frame("blob_chunk", request_id, body)) == raw  # what the phone sends
    assert parse_blob_chunk(raw) == BlobChunk(request_id, offset, data) == _decoded_chunk(raw)
    assert parse_blob_data(raw) is None and parse_blob_chunk(_encoded(1, 2, b"x", True)) is None


@settings(max_examples=600, deadline=None)
@given(
    _ids,
    _offsets,
    st.binary(max_size=40),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_whatever_the_box_fast_path_accepts_decode_frame_accepts_with_the_same_values(
    request_id: int, offset: int, data: bytes, flips: list[tuple[int, int]]
) -> None:
    raw = bytearray(_chunk(request_id, offset, data))
    for where, value in flips:
        raw[where % len(raw)] = value
    fast = parse_blob_chunk(bytes(raw))
    if fast is not None:
        assert fast == _decoded_chunk(bytes(raw))


def _with(head_edit: bytes, old: bytes, raw: bytes) -> bytes:
    assert raw.count(old) == 1
    return raw.replace(old, head_edit)


@pytest.mark.parametrize(
    "mangled",
    [
        # offset 5 written on two bytes instead of one (not the shortest head)
        _with(b"\x66offset\x18\x05", b"\x66offset\x05", _encoded(7, 5, b"abc", False)),
        # request id 7 in a longer head
        _encoded(7, 5, b"abc", False)[:-1] + b"\x19\x00\x07",
        # the data's length in a longer head
        _with(b"\x64data\x58\x03abc", b"\x64data\x43abc", _encoded(7, 5, b"abc", False)),
        # a piece longer than blob_piece_bytes
        _encoded(7, 5, bytes(BLOB_PIECE_BYTES + 1), False),
        # another frame type with the same body
        _encoded(7, 5, b"abc", False).replace(b"blob_data", b"blob_dat4"),
        # an extra byte after the frame
        _encoded(7, 5, b"abc", False) + b"\x00",
        # a negative offset (major type 1)
        _with(b"\x66offset\x24", b"\x66offset\x05", _encoded(7, 5, b"abc", False)),
    ],
)
def test_non_canonical_or_out_of_bounds_frames_are_left_to_decode_frame(mangled: bytes) -> None:
    assert parse_blob_data(mangled) is None
    with pytest.raises((FrameError, AssertionError)):
        _decoded(mangled)


def test_a_body_with_an_extra_key_is_not_a_blob_data_frame() -> None:
    body = {"offset": 5, "data": b"abc", "end": True, "more": 1}
    raw = cbor2.dumps({"t": "blob_data", "id": 7, "b": body}, canonical=True)
    assert parse_blob_data(raw) is None
    with pytest.raises(FrameError):
        _decoded(raw)


# -- the box's side: pieces sealed on a worker thread, under the outbox lock -------------------


@pytest.mark.parametrize(
    ("size", "offset"),
    [(0, 0), (1, 0), (BLOB_PIECE_BYTES, 0), (9 * 65536 + 3, 0), (16 * 65536, 70_000), (5, 5)],
)
async def test_the_streamed_pieces_are_the_blob_from_the_offset_and_end_once(
    size: int, offset: int
) -> None:
    sender, receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    blob = os.urandom(size)
    rest = blob[offset:]
    chunks = iter([rest[i : i + 65536] for i in range(0, len(rest), 65536)] or [b""])
    frames = BlobFrames(41, offset)
    while not frames.done:
        batch = read_batch(chunks)
        await outbox.send_sealed(functools.partial(frames.seal, batch=batch))
    pieces = [_decoded(raw) for message in wire.messages for raw in receiver.open(message)]
    assert b"".join(p.data for p in pieces) == rest
    assert [p.end for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(len(p.data) == BLOB_PIECE_BYTES for p in pieces[:-1])
    assert [p.offset for p in pieces] == [offset + i * BLOB_PIECE_BYTES for i in range(len(pieces))]


async def test_a_batch_s_first_piece_is_on_the_wire_before_the_next_is_sealed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The phone works on a piece while the box seals the next one, instead of idling
    # until a whole ~1 MiB batch is sealed (and reading it back from memory cold).
    sender, receiver = _channel_pair()
    events: list[str] = []
    seal_parts = sender.seal_parts

    def logged(parts: Sequence[bytes | memoryview]) -> list[bytes]:
        events.append("sealed")
        return seal_parts(parts)

    async def write(message: bytes) -> None:
        events.append("written")
        receiver.open(message)

    monkeypatch.setattr(sender, "seal_parts", logged)
    rest = os.urandom(4 * 65536)
    chunks = iter([rest[i : i + 65536] for i in range(0, len(rest), 65536)])
    await Outbox(sender, write).send_sealed(
        functools.partial(BlobFrames(7, 0).seal, batch=read_batch(chunks))
    )
    assert events == ["sealed", "written"] * 5  # 4 x 64 KiB: five pieces


async def test_a_batch_cut_off_while_written_stops_the_channel_instead_of_desynchronising() -> None:
    sender, _receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    wire.gate.clear()  # the phone stops reading: the first write waits
    batch = [b"one", b"two"]
    task = asyncio.create_task(
        outbox.send_sealed(lambda channel: [channel.seal(f)[0] for f in batch])
    )
    await asyncio.sleep(0)  # one loop turn: the task seals both and waits to write
    assert not task.done()
    task.cancel()  # the connection is going away mid-batch
    with pytest.raises(asyncio.CancelledError):
        await task
    wire.gate.set()
    # Both nonces are used and neither message went out: a frame sent now would not
    # open at the phone, so the outbox refuses to send (the connection then closes).
    with pytest.raises(ConnectionResetError):
        await outbox.send(b"after")
    assert wire.messages == []
