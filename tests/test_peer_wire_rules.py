"""Wire rules of protocol.md §1 and §5 that a second implementation tripped on:
the request id of an error about an undecodable frame, how nesting depth is
counted, the key order of deterministic CBOR, and the WebSocket message size
limit on both sides of its edge. Each test quotes the rule it exercises; the
end-to-end ones run the reference client against a box on loopback."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer_helpers import RunningBox, paired_phone, running_box
from protocol_doc import rule
from strongroom.cbor_check import MAX_DEPTH, CborRejected, check_cbor
from strongroom.client import BoxError
from strongroom.peer.frames import Direction, ErrorCode, FrameError, decode_frame
from strongroom.peer.request_id import readable_request_id

box = pytest.fixture(running_box)
MAX = 256 * 1024


def _nested(depth: int) -> Any:
    """A value whose arrays are `depth` deep (0 is a bare integer)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def undecodable(request_id: int) -> dict[str, bytes]:
    """Frames with this request id that the strict decoder refuses, each for another reason."""
    i = cbor2.dumps(request_id)  # the id in its shortest head
    ping = {"t": "ping", "id": request_id, "b": {}}
    return {
        "keys out of canonical order": b"\xa3\x61t\x64ping\x61b\xa0\x62id" + i,
        "id in a long head": b"\xa3\x61b\xa0\x61t\x64ping\x62id\x1b"
        + request_id.to_bytes(8, "big"),
        "indefinite-length map": b"\xbf\x61b\xa0\x61t\x64ping\x62id" + i + b"\xff",
        "indefinite-length text": b"\xa3\x61b\xa0\x61t\x7f\x62pi\x62ng\xff\x62id" + i,
        "float in the body": b"\xa3\x61b\xa1\x61x\xf9\x3c\x00\x61t\x64ping\x62id" + i,
        "tag in the body": b"\xa3\x61b\xa1\x61x\xc2\x41\x01\x61t\x64ping\x62id" + i,
        "nested 9 deep": cbor2.dumps({**ping, "b": {"x": _nested(8)}}, canonical=True),
        "an extra key": cbor2.dumps({**ping, "x": 1}, canonical=True),
        "trailing bytes": cbor2.dumps(ping, canonical=True) + b"\x00",
    }


UNDECODABLE_WITH_ID_77 = undecodable(77)
# Bytes where no id can be read: the error carries id 0.
NO_READABLE_ID = {
    "not a map": cbor2.dumps([77]),
    "no id key": b"\xa2\x61b\xa0\x61t\x64ping",
    "negative id": b"\xa3\x61b\xa0\x61t\x64ping\x62id\x38\x4c",
    "float id": b"\xa3\x61b\xa0\x61t\x64ping\x62id\xf9\x54\xd0",
    "id of 2^53": cbor2.dumps({"t": "ping", "id": 2**53, "b": {}}, canonical=True),
    "cut before the id": b"\xa3\x61b\xa0\x61t\x64ping\x62i",
    "empty": b"",
}


@pytest.mark.parametrize("raw", UNDECODABLE_WITH_ID_77.values(), ids=UNDECODABLE_WITH_ID_77.keys())
def test_an_undecodable_frame_is_refused_with_its_request_id(raw: bytes) -> None:
    rule("the box returns the request id whenever it can read one")
    with pytest.raises(FrameError) as refused:
        decode_frame(raw, Direction.TO_BOX, max_bytes=MAX)
    assert refused.value.code == ErrorCode.MALFORMED
    assert refused.value.request_id == 77


@pytest.mark.parametrize("raw", NO_READABLE_ID.values(), ids=NO_READABLE_ID.keys())
def test_without_a_readable_id_the_error_carries_id_0(raw: bytes) -> None:
    rule("Otherwise (not a map, no such key, a negative, too large or non-integer id")
    with pytest.raises(FrameError) as refused:
        decode_frame(raw, Direction.TO_BOX, max_bytes=MAX)
    assert refused.value.request_id == 0


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_reading_an_id_from_any_bytes_never_fails(raw: bytes) -> None:
    assert 0 <= readable_request_id(raw) < 2**53
    assert 0 <= readable_request_id(b"\xbf\x62id\x01" + raw) < 2**53


def test_nesting_is_counted_from_the_frame_map_and_stops_at_8() -> None:
    rule("the frame's own map being the first")
    assert MAX_DEPTH == 8
    check_cbor(cbor2.dumps(_nested(8)))  # 8 arrays, a scalar inside the 8th
    with pytest.raises(CborRejected, match="nested deeper than 8"):
        check_cbor(cbor2.dumps(_nested(9)))
    # In a frame: the frame map (1), "b" (2), then arrays. 8 in all passes the CBOR
    # rules (the body's schema then refuses it); 9 is refused as too deep.
    for depth, message in ((8, "invalid hello body"), (9, "nested deeper than 8")):
        body = {"caps": _nested(depth - 2), "name": "", "app": ""}
        raw = cbor2.dumps({"t": "hello", "id": 5, "b": body}, canonical=True)
        with pytest.raises(FrameError, match=message) as refused:
            decode_frame(raw, Direction.TO_BOX, max_bytes=MAX)
        assert refused.value.request_id == 5


def test_length_first_and_bytewise_key_orders_agree_on_text_keys() -> None:
    rule("so both rules give the same order: a phone may sort either way")
    keys = ["b", "t", "id", "at", "ref", "kind", "sig", "proof", "record", "sha256"]
    keys += ["x" * 23, "y" * 24, "z" * 300, "duplicate", "log_index", "tree_head"]
    encoded = [cbor2.dumps(k) for k in keys]
    assert sorted(encoded) == sorted(encoded, key=lambda e: (len(e), e))
    # Both orders give the bytes the box checks.
    value = {k: 0 for k in keys}
    bytewise = b"\xb0" + b"".join(e + b"\x00" for e in sorted(encoded))
    assert bytewise == cbor2.dumps(value, canonical=True)
    check_cbor(bytewise)


async def test_the_box_answers_an_undecodable_request_with_its_id(box: RunningBox) -> None:
    rule("Errors about a frame carry that frame's `id`, also when the frame cannot be decoded")
    phone = await paired_phone(box, "claire")
    link = phone._require_link()
    for name in UNDECODABLE_WITH_ID_77:
        request_id, answer = link.watch()
        await link.outbox.send(undecodable(request_id)[name])
        with pytest.raises(BoxError) as refused:
            await asyncio.wait_for(answer, 5)  # the box named this request in its error
        assert refused.value.code == "malformed", name
        link.unwatch(request_id)
    # The session continued through all of it.
    assert (await link.request("ping", {})).type == "pong"
    await phone.close()


@pytest.mark.parametrize(("size", "closed_with"), [(65_536, 4400), (65_537, 1009)])
async def test_websocket_messages_up_to_65536_bytes_reach_the_box(
    box: RunningBox, size: int, closed_with: int
) -> None:
    rule("A WebSocket message is at most 65 536 bytes")
    # Selector IK and a Noise message 1 of 65 535 bytes: the largest message there is.
    # It reaches the handshake (which fails on random bytes: 4400); one byte more is
    # closed by the WebSocket layer (1009) before anyone reads it.
    async with aiohttp.ClientSession() as http, http.ws_connect(box.url) as ws:
        await ws.send_bytes(b"\x02" + os.urandom(size - 1))
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == closed_with
