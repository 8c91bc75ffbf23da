"""push frames without cbor2 (peer/push_frames.py): the box's fast path reads what the
phone sends exactly as decode_frame does, accepts nothing decode_frame refuses, and
leaves every other push to decode_frame (which then says what is wrong)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.archive.record import MAX_RECORD_BYTES
from strongroom.client.link import _encoded as link_encoded
from strongroom.config import Limits
from strongroom.peer.frames import Direction, Frame, FrameError, decode_frame, encode_frame
from strongroom.peer.push_frames import parse_push, read_known_frame
from strongroom.peer.request_id import MAX_REQUEST_ID

_ids = st.one_of(st.integers(0, 30), st.integers(0, MAX_REQUEST_ID))
_known = st.one_of(
    st.none(),
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32, 2**63 - 1]),
    st.integers(0, 2**63 - 1),
)
_records = st.one_of(
    st.binary(min_size=1, max_size=300),
    st.sampled_from([1, 23, 24, 255, 256, 65535, 65536, MAX_RECORD_BYTES]).map(bytes),
)
_SIG = bytes(range(64))


def _body(record: bytes, sig: bytes, known: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"record": record, "sig": sig}
    if known is not None:
        body["known"] = known
    return body


def _decoded(raw: bytes) -> tuple[int, dict[str, Any]]:
    frame = decode_frame(raw, Direction.TO_BOX, max_bytes=1 << 20)
    assert frame.type == "push"
    return frame.id, dict(frame.body)


@settings(max_examples=300, deadline=None)
@given(_ids, _records, st.binary(min_size=64, max_size=64), _known)
def test_the_box_reads_a_phone_push_as_decode_frame_does(
    request_id: int, record: bytes, sig: bytes, known: int | None
) -> None:
    frame = Frame("push", request_id, _body(record, sig, known))
    raw = link_encoded(frame)  # what the reference phone sends
    assert raw == encode_frame(frame)
    assert parse_push(raw) == (request_id, _body(record, sig, known)) == _decoded(raw)
    # The same read from a view of the bytes (SecureChannel.open_views gives views).
    assert parse_push(memoryview(raw)) == parse_push(raw)  # type: ignore[arg-type]


@settings(max_examples=600, deadline=None)
@given(
    _ids,
    st.binary(min_size=1, max_size=40),
    _known,
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_whatever_the_fast_path_accepts_decode_frame_accepts_with_the_same_values(
    request_id: int, record: bytes, known: int | None, flips: list[tuple[int, int]]
) -> None:
    raw = bytearray(encode_frame(Frame("push", request_id, _body(record, _SIG, known))))
    for where, value in flips:
        raw[where % len(raw)] = value
    fast = parse_push(bytes(raw))
    if fast is not None:
        assert fast == _decoded(bytes(raw))


def _push(record: bytes = b"r", sig: bytes = _SIG, request_id: int = 7, **extra: Any) -> bytes:
    return encode_frame(Frame("push", request_id, {"record": record, "sig": sig, **extra}))


@pytest.mark.parametrize(
    "raw",
    [
        _push(record=b""),  # an empty record
        _push(sig=_SIG[:63]),  # a short signature
        _push(record=bytes(MAX_RECORD_BYTES + 1)),  # a record above the bound
        _push(extra="x"),  # an unknown field
        _push()[:-1] + b"\x18\x07",  # the request id in a longer head
        _push().replace(b"\x66record\x41", b"\x66record\x58\x01"),  # the length, too
        _push() + b"\x00",  # a byte after the frame
        _push().replace(b"\x64push", b"\x64pusH"),  # another type
        _push(known=-1),  # a negative known
        _push(request_id=MAX_REQUEST_ID + 1),
    ],
)
def test_pushes_outside_the_one_canonical_form_are_left_to_decode_frame(raw: bytes) -> None:
    assert parse_push(raw) is None
    with pytest.raises(FrameError):
        decode_frame(raw, Direction.TO_BOX, max_bytes=1 << 20)


def test_a_push_above_the_frame_limit_is_not_read_by_the_fast_path() -> None:
    raw = _push(record=bytes(4000))
    assert parse_push(raw) is not None
    assert read_known_frame(raw, len(raw) - 1) is None  # decode_frame says `too-large`
    assert read_known_frame(raw, Limits().max_frame_bytes) == Frame(
        "push", 7, {"record": bytes(4000), "sig": _SIG}
    )
