"""The frame codec, the strict CBOR pre-check and the fragmenting channel, with hostile input."""

from __future__ import annotations

import os
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.cbor_check import MAX_DEPTH, CborRejected, check_cbor
from strongroom.noise import DecryptError, HandshakeState, TransportSession
from strongroom.peer.channel import MAX_FRAGMENT, ChannelError, SecureChannel
from strongroom.peer.frames import (
    BLOB_PIECE_BYTES,
    SCHEMAS,
    Direction,
    ErrorCode,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
    record_ack,
)
from strongroom.peer.handshake import HandshakeKind, initiator, responder
from strongroom.proof.sth import SignedTreeHead

MAX = 256 * 1024
HEAD = {"tree_size": 3, "timestamp_ms": 1, "root_hash": "ab" * 32, "signature": "cd" * 64}


def _raw(value: Any) -> bytes:
    return cbor2.dumps(value, canonical=True)


def test_a_push_frame_round_trips() -> None:
    frame = Frame("push", 7, {"record": b"\xa0", "sig": bytes(64)})
    raw = encode_frame(frame)
    assert decode_frame(raw, Direction.TO_BOX, max_bytes=MAX) == frame
    # A body valid for one direction is checked against that direction's schema.
    with pytest.raises(FrameError) as wrong_way:
        decode_frame(raw, Direction.TO_PHONE, max_bytes=MAX)
    assert wrong_way.value.code == ErrorCode.UNKNOWN_TYPE


def test_an_ack_with_proof_round_trips() -> None:
    body = {
        "kind": "record",
        "ref": bytes(32),
        "log_index": 2,
        "at": 5,
        "tree_head": HEAD,
        "proof": [bytes(32)] * 3,
        "duplicate": False,
    }
    frame = Frame("ack", 9, body)
    assert decode_frame(encode_frame(frame), Direction.TO_PHONE, max_bytes=MAX) == frame


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", ErrorCode.MALFORMED),
        (b"\xff", ErrorCode.MALFORMED),
        (_raw([1, 2]), ErrorCode.MALFORMED),
        (_raw({"t": "ping", "id": 1}), ErrorCode.MALFORMED),
        (_raw({"t": "ping", "id": -1, "b": {}}), ErrorCode.MALFORMED),
        (_raw({"t": "ping", "id": 2**53, "b": {}}), ErrorCode.MALFORMED),
        (_raw({"t": "ping", "id": True, "b": {}}), ErrorCode.MALFORMED),
        (_raw({"t": "ping", "id": 1, "b": {"x": 1}}), ErrorCode.MALFORMED),
        (_raw({"t": "warp", "id": 4, "b": {}}), ErrorCode.UNKNOWN_TYPE),
        (
            _raw({"t": "push", "id": 1, "b": {"record": "text", "sig": bytes(64)}}),
            ErrorCode.MALFORMED,
        ),
        (
            _raw({"t": "push", "id": 1, "b": {"record": b"x", "sig": bytes(63)}}),
            ErrorCode.MALFORMED,
        ),
        (
            _raw(
                {
                    "t": "blob_chunk",
                    "id": 1,
                    "b": {"offset": 0, "data": bytes(BLOB_PIECE_BYTES + 1)},
                }
            ),
            ErrorCode.MALFORMED,
        ),
        (_raw({"t": "ping", "id": 1, "b": {}}) + b"\x00", ErrorCode.MALFORMED),
        # Not canonical: keys out of order, a long-form integer.
        (b"\xa3\x61t\x64ping\x61b\xa0\x62id\x01", ErrorCode.MALFORMED),
        (b"\xa3\x61b\xa0\x61t\x64ping\x62id\x18\x01", ErrorCode.MALFORMED),
        # A tag (here a bignum), a float, an indefinite-length map.
        (b"\xa3\x61b\xa0\x61t\x64ping\x62id\xc2\x41\x01", ErrorCode.MALFORMED),
        (b"\xa3\x61b\xa0\x61t\x64ping\x62id\xf9\x3c\x00", ErrorCode.MALFORMED),
        (b"\xbf\x61b\xa0\x61t\x64ping\x62id\x01\xff", ErrorCode.MALFORMED),
    ],
)
def test_hostile_frames_are_refused_with_a_code(raw: bytes, code: ErrorCode) -> None:
    with pytest.raises(FrameError) as refused:
        decode_frame(raw, Direction.TO_BOX, max_bytes=MAX)
    assert refused.value.code == code


def test_unknown_type_error_echoes_the_request_id() -> None:
    with pytest.raises(FrameError) as refused:
        decode_frame(_raw({"t": "warp", "id": 42, "b": {}}), Direction.TO_BOX, max_bytes=MAX)
    assert refused.value.request_id == 42


def test_size_and_depth_limits() -> None:
    big = encode_frame(Frame("push", 1, {"record": bytes(1000), "sig": bytes(64)}))
    with pytest.raises(FrameError) as too_big:
        decode_frame(big, Direction.TO_BOX, max_bytes=500)
    assert too_big.value.code == ErrorCode.TOO_LARGE
    deep: Any = 0
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(CborRejected):
        check_cbor(_raw(deep))
    # A container that claims more items than bytes could hold is refused before decoding.
    with pytest.raises(CborRejected):
        check_cbor(b"\x9b" + (2**62).to_bytes(8, "big"))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_frame_error(raw: bytes) -> None:
    for direction in Direction:
        try:
            decode_frame(raw, direction, max_bytes=MAX)
        except FrameError:
            pass


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(_cbor_values)
def test_the_cbor_subset_is_accepted_and_decodes_only_to_frame_errors(value: Any) -> None:
    raw = _raw(value)
    check_cbor(raw)  # plain data the protocol could carry is never refused by the pre-check
    for direction in Direction:
        try:
            decode_frame(raw, direction, max_bytes=MAX)
        except FrameError:
            pass


@settings(max_examples=300)
@given(st.sampled_from(sorted({t for _, t in SCHEMAS})), st.integers(0, 2**53 - 1), _cbor_values)
def test_random_bodies_for_real_types_raise_only_frame_error(
    kind: str, rid: int, body: Any
) -> None:
    raw = _raw({"t": kind, "id": rid, "b": body})
    for direction in Direction:
        try:
            frame = decode_frame(raw, direction, max_bytes=MAX)
        except FrameError as exc:
            assert exc.request_id in (0, rid)
        else:
            assert frame.type == kind and frame.id == rid


def _channel_pair(max_frame: int) -> tuple[SecureChannel, SecureChannel]:
    phone_key, box_key = os.urandom(32), os.urandom(32)
    phone: HandshakeState = initiator(HandshakeKind.XX, phone_key)
    box: HandshakeState = responder(HandshakeKind.XX, box_key, None)
    box.read_message(phone.write_message())
    phone.read_message(box.write_message())
    box.read_message(phone.write_message())
    return (
        SecureChannel(TransportSession.from_handshake(phone), max_frame),
        SecureChannel(TransportSession.from_handshake(box), max_frame),
    )


def test_large_frames_travel_in_fragments_and_reassemble() -> None:
    phone, box = _channel_pair(MAX)
    frame = os.urandom(3 * MAX_FRAGMENT + 17)
    messages = phone.seal(frame)
    assert len(messages) == 4
    assert [box.open(m) for m in messages] == [[], [], [], [frame]]
    small = phone.seal(b"hello")
    assert len(small) == 1 and box.open(small[0]) == [b"hello"]


def test_frames_ready_together_share_bundles_in_order() -> None:
    phone, box = _channel_pair(MAX)
    frames = [os.urandom(n) for n in (40, 1, 36_000, 36_000, 70_000, 900, 10)]
    messages = phone.seal_many(frames)
    # 40+1+36000 | 36000 (alone: plain) | 70000 alone (two fragments) | 900+10
    assert len(messages) == 5
    opened = [f for m in messages for f in box.open(m)]
    assert opened == frames
    # One frame alone goes as a plain message a peer without bundles can read too.
    (single,) = phone.seal_many([b"ping"])
    assert box.open(single) == [b"ping"]


def test_open_views_gives_the_frames_open_gives_and_refuses_what_it_refuses() -> None:
    # The phone's reader opens messages as views (no copy of a blob's pieces).
    phone, box = _channel_pair(MAX)
    frames = [os.urandom(n) for n in (40, 1, 36_000, 36_000, 70_000, 900, 10, 65_000)]
    messages = phone.seal_many(frames[:-1]) + phone.seal(frames[-1])
    opened = [f for m in messages for f in box.open_views(m)]
    assert all(isinstance(f, memoryview) for f in opened) and opened == frames
    genuine = phone.seal(b"next")[0]
    with pytest.raises(DecryptError):
        box.open_views(genuine[:-1] + bytes([genuine[-1] ^ 1]))
    assert box.open_views(genuine) == [b"next"]  # the forged message changed nothing
    with pytest.raises(ChannelError):
        box.open_views(phone._transport.encrypt(b"\x02\x00\x05hello"))


@pytest.mark.parametrize(
    "plain",
    [
        b"\x02\x00\x05hello",  # a bundle of one frame: never sent, so refused
        b"\x02\x00\x05hello\x00\x00",  # an empty frame
        b"\x02\x00\x05hello\x00\x09short",  # a length past the end
        b"\x02",  # nothing at all
    ],
)
def test_malformed_bundles_are_fatal(plain: bytes) -> None:
    phone, box = _channel_pair(MAX)
    with pytest.raises(ChannelError):
        box.open(phone._transport.encrypt(plain))


def test_a_bundle_cannot_interrupt_a_fragmented_frame_nor_exceed_the_frame_limit() -> None:
    phone, box = _channel_pair(MAX)
    first_fragment = phone._transport.encrypt(b"\x01" + os.urandom(100))
    assert box.open(first_fragment) == []
    with pytest.raises(ChannelError):
        box.open(phone.seal_many([b"a", b"b"])[0])
    phone, box = _channel_pair(100)
    with pytest.raises(ChannelError):
        box.open(phone.seal_many([b"a", bytes(101)])[0])


def test_reassembly_is_bounded_and_framing_errors_are_fatal() -> None:
    phone, box = _channel_pair(100_000)
    messages = phone.seal(os.urandom(150_000))  # the box allows 100 kB frames
    box.open(messages[0])
    with pytest.raises(ChannelError):
        box.open(messages[1])
    phone, box = _channel_pair(MAX)
    bad_flag = phone._transport.encrypt(b"\x07hello")
    with pytest.raises(ChannelError):
        box.open(bad_flag)


_any_keys = st.text(max_size=8) | st.integers(-1000, 2**40) | st.binary(max_size=6)
_keyed_values = st.recursive(
    st.integers(0, 2**20) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400)
@given(_keyed_values)
def test_the_pre_check_accepts_exactly_the_canonical_encoding(value: Any) -> None:
    # decode_frame relies on this: bytes that pass the pre-check need no re-encoding
    # to prove them canonical. cbor2 without canonical=True keeps insertion order.
    canonical = cbor2.dumps(value, canonical=True)
    check_cbor(canonical)
    in_insertion_order = cbor2.dumps(value)
    if in_insertion_order != canonical:
        with pytest.raises(CborRejected) as refused:
            check_cbor(in_insertion_order)
        assert refused.value.canonical


def test_repeated_keys_are_refused_even_when_otherwise_in_order() -> None:
    body_with_two_names = b"\xa2\x64name\x61a\x64name\x61b"
    with pytest.raises(CborRejected):
        check_cbor(body_with_two_names)
    frame = b"\xa3\x61b" + body_with_two_names + b"\x61t\x65hello\x62id\x01"
    with pytest.raises(FrameError) as refused:
        decode_frame(frame, Direction.TO_BOX, max_bytes=MAX)
    assert refused.value.code == ErrorCode.MALFORMED


@settings(max_examples=200)
@given(
    st.integers(0, 2**53 - 1),
    st.sampled_from(["record", "blob"]),
    st.binary(min_size=32, max_size=32),
    st.integers(0, 2**40),
    st.integers(0, 2**53 - 1),
    st.lists(st.binary(min_size=32, max_size=32), max_size=40),
    st.booleans(),
)
def test_record_acks_are_encoded_canonically_without_sorting(
    rid: int, kind: str, ref: bytes, index: int, at: int, proof: list[bytes], duplicate: bool
) -> None:
    head = SignedTreeHead(index + 1, os.urandom(32), at, os.urandom(64))
    ack = record_ack(
        rid,
        kind=kind,
        ref=ref,
        log_index=index,
        at=at,
        tree_head=head,
        proof=proof,
        duplicate=duplicate,
    )
    raw = encode_frame(ack)
    assert raw == cbor2.dumps({"t": "ack", "id": rid, "b": ack.body}, canonical=True)
    decoded = decode_frame(raw, Direction.TO_PHONE, max_bytes=MAX)
    assert decoded == ack
    assert SignedTreeHead.from_dict(decoded.body["tree_head"]) == head
