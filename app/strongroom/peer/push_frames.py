"""`push` frames read without a general CBOR codec (protocol.md §6.1).

A busy phone's frames are pushes: one per record. `decode_frame` costs ~8 µs a
frame here, half of it the strict walk of the frame's CBOR (cbor_check) and most
of the rest the schema check; a push has one canonical encoding, so the box
recognises those exact bytes instead, as it does blob_chunk frames
(blob_frames.py):

    A3 61 'b' A2|A3  63 'sig' 58 40 SIG(64)  [65 'known' <uint>]
                     66 'record' <bytes head> RECORD
       61 't' 64 'push'  62 'id' <uint>

(keys in canonical order: shorter first, then bytewise; every head the shortest;
`known` is optional). `parse_push` accepts only those bytes, with the bounds
`decode_frame` checks, and says None to anything else, which then goes through
`decode_frame` as every other frame. The record's own bytes are not looked at
here: they are checked as a record (archive/record.py).
"""

from __future__ import annotations

from typing import Any

from strongroom.archive.record import MAX_RECORD_BYTES
from strongroom.peer.blob_frames import _head, parse_blob_chunk, read_uint
from strongroom.peer.frames import Frame
from strongroom.peer.request_id import MAX_REQUEST_ID

_MAX_UINT = 2**63 - 1  # frames.uint()'s bound
_START = b"\xa3\x61b"
_SIG = b"\x63sig\x58\x40"
_KNOWN = b"\x65known"
_RECORD = b"\x66record"
_TYPE_AND_ID = b"\x61t\x64push\x62id"


def push_bytes(request_id: int, record: bytes, sig: bytes, known: int | None) -> bytes:
    """The canonical bytes of a push frame (what `encode_frame` writes, without cbor2:
    the phone writes one per record). `sig` is 64 bytes, `known` and `request_id`
    below 2**64."""
    known_part = b"" if known is None else _KNOWN + _head(0, known)
    return b"".join(
        (
            _START,
            b"\xa2" if known is None else b"\xa3",
            _SIG,
            sig,
            known_part,
            _RECORD,
            _head(0x40, len(record)),
            record,
            _TYPE_AND_ID,
            _head(0, request_id),
        )
    )


def parse_push(raw: bytes) -> tuple[int, dict[str, Any]] | None:
    """(request id, body) of a canonical push frame, or None if `raw` is not exactly one."""
    if raw[:3] != _START or len(raw) < 80:
        return None
    body_head = raw[3]
    if body_head not in (0xA2, 0xA3) or raw[4:10] != _SIG:
        return None
    signature = raw[10:74]
    pos = 74
    body: dict[str, Any] = {}
    if body_head == 0xA3:  # sig, known, record
        if raw[pos : pos + 6] != _KNOWN:
            return None
        known = read_uint(raw, pos + 6, _MAX_UINT)
        if known is None:
            return None
        body["known"] = known[0]
        pos = known[1]
    if raw[pos : pos + 7] != _RECORD:
        return None
    pos += 7
    # The record's length: a bytes head (major type 2), shortest form, 1..MAX_RECORD_BYTES.
    if pos >= len(raw) or raw[pos] >> 5 != 2:
        return None
    # One bytes object whatever raw is (a memoryview, as blob_frames.py reads, too).
    length = read_uint(bytes([raw[pos] & 0x1F, *raw[pos + 1 : pos + 5]]), 0, MAX_RECORD_BYTES)
    if length is None or length[0] == 0:
        return None
    start = pos + length[1]
    end = start + length[0]
    if raw[end : end + 10] != _TYPE_AND_ID:
        return None
    request_id = read_uint(raw, end + 10, MAX_REQUEST_ID)
    if request_id is None or request_id[1] != len(raw):
        return None
    body["record"] = raw[start:end]
    body["sig"] = signature
    return request_id[0], body


def read_known_frame(raw: bytes, max_bytes: int) -> Frame | None:
    """A push or an upload's blob_chunk, recognised by its exact canonical bytes
    (here and peer/blob_frames.py: what decode_frame accepts, without
    cbor2); None otherwise."""
    if len(raw) > max_bytes:
        return None
    push = parse_push(raw)
    if push is not None:
        return Frame("push", push[0], push[1])
    chunk = parse_blob_chunk(raw)
    if chunk is None:
        return None
    return Frame("blob_chunk", chunk.request_id, {"offset": chunk.offset, "data": chunk.data})
