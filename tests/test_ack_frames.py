"""ack frames without cbor2 (peer/ack_frames.py): the phone reads a record's or blob's ack
exactly as decode_frame does, accepts nothing decode_frame refuses, and leaves every
other frame to decode_frame (which then says what is wrong)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.client.link import _decoded as link_decoded
from strongroom.peer.ack_frames import parse_ack
from strongroom.peer.frames import (
    Direction,
    ErrorCode,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
    error_frame,
    record_ack,
)
from strongroom.peer.head_chain import HeadChain
from strongroom.peer.request_id import MAX_REQUEST_ID
from strongroom.proof.sth import SignedTreeHead

_uints = st.one_of(
    st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1]),
    st.integers(0, 2**63 - 1),
)
_ids = st.one_of(st.integers(0, 30), st.integers(0, MAX_REQUEST_ID))
_hashes = st.binary(min_size=32, max_size=32)


@st.composite
def _acks(draw: st.DrawFn) -> Frame:
    head = SignedTreeHead(
        draw(_uints), draw(_hashes), draw(_uints), draw(st.binary(min_size=64, max_size=64))
    )
    ack = record_ack(
        draw(_ids),
        kind=draw(st.sampled_from(["record", "blob"])),
        ref=draw(st.binary(min_size=16, max_size=32)),
        log_index=draw(_uints),
        at=draw(_uints),
        tree_head=head,
        proof=draw(st.lists(_hashes, max_size=64)),
        duplicate=draw(st.booleans()),
    )
    if draw(st.booleans()):  # what a session that asked for consistency proofs sends
        ack = HeadChain._with_proof(ack, draw(_uints), draw(st.lists(_hashes, max_size=128)))
    return ack


def _decoded(raw: bytes) -> Frame:
    return decode_frame(raw, Direction.TO_PHONE, max_bytes=1 << 20)


@settings(max_examples=300, deadline=None)
@given(_acks())
def test_the_phone_reads_a_box_ack_as_decode_frame_does(ack: Frame) -> None:
    raw = encode_frame(ack)  # what the box sends
    fast = parse_ack(raw)
    assert fast is not None
    assert fast == _decoded(raw) == ack
    assert list(fast.body) == list(_decoded(raw).body)  # the same maps, in wire order
    assert fast.body["tree_head"] == ack.body["tree_head"]
    assert link_decoded(raw) == fast  # the reference phone's reader takes this path


@settings(max_examples=600, deadline=None)
@given(
    _acks(),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(0, 2000),
)
def test_whatever_the_fast_path_accepts_decode_frame_accepts_with_the_same_values(
    ack: Frame, flips: list[tuple[int, int]], cut: int
) -> None:
    raw = bytearray(encode_frame(ack))
    for where, value in flips:
        raw[where % len(raw)] = value
    for candidate in (bytes(raw), bytes(raw[: cut % len(raw)]), bytes(raw) + b"\x00"):
        fast = parse_ack(candidate)
        if fast is not None:
            assert fast == _decoded(candidate)


def _ack(**changes: object) -> Frame:
    fields: dict[str, object] = {
        "kind": "record",
        "ref": bytes(32),
        "log_index": 5,
        "at": 1_700_000_000_000,
        "tree_head": SignedTreeHead(6, bytes(32), 1_700_000_000_001, bytes(64)),
        "proof": [bytes(32)] * 3,
        "duplicate": False,
    }
    fields.update(changes)
    return record_ack(9, **fields)  # type: ignore[arg-type]


def _raw(**changes: object) -> bytes:
    return encode_frame(_ack(**changes))


@pytest.mark.parametrize(
    "raw",
    [
        _raw(ref=bytes(15)),  # a ref below 16 bytes
        _raw(ref=bytes(33)),  # and above 32
        _raw(proof=[bytes(31)]),  # a proof node that is not 32 bytes
        _raw(proof=[bytes(32)] * 65),  # a proof above 64 nodes
        _raw(kind="other"),
        _raw()[:-1] + b"\x18\x09",  # the request id in a longer head
        _raw().replace(b"\x62at\x1b", b"\x62at\x3b"),  # a negative time
        _raw() + b"\x00",  # a byte after the frame
        _raw().replace(b"\x63ack", b"\x63acK"),  # another type
        _raw().replace(b"\x69duplicate\xf4", b"\x69duplicate\xf6"),  # null, not a boolean
        encode_frame(
            HeadChain._with_proof(_ack(), 3, [bytes(32)] * 129)  # consistency above 128 nodes
        ),
    ],
)
def test_acks_outside_the_one_canonical_form_are_left_to_decode_frame(raw: bytes) -> None:
    assert parse_ack(raw) is None
    with pytest.raises(FrameError):
        _decoded(raw)


@pytest.mark.parametrize(
    "frame",
    [
        Frame("ack", 4, {"kind": "mail", "ref": bytes(16)}),  # a mail's ack
        error_frame(ErrorCode.REJECTED, "record signature does not verify", 4),
        Frame("ping", 0, {}),
    ],
)
def test_other_frames_go_through_decode_frame(frame: Frame) -> None:
    raw = encode_frame(frame)
    assert parse_ack(raw) is None
    assert link_decoded(raw) == _decoded(raw) == frame


def test_the_phone_ignores_a_malformed_frame(caplog: pytest.LogCaptureFixture) -> None:
    assert link_decoded(_raw() + b"\x00") is None
    assert "ignoring a malformed frame" in caplog.text
