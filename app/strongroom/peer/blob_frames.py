"""blob_data and blob_chunk frames written and read without a general CBOR codec
(protocol.md §9).

Attachments are the long streams of large frames: 1 GiB is about 16,500 frames.
cbor2 and the strict pre-check cost ~20 µs each way per 64 KiB frame, as much as a
third of the Noise encryption itself. Each of these frames has one canonical
encoding, so both ends write and recognise those exact bytes:

    A3 61 'b' A3 63 'end' F4|F5  64 'data' <bytes head> DATA  66 'offset' <uint>
       61 't' 69 'blob_data'  62 'id' <uint>
    A3 61 'b' A2 64 'data' <bytes head> DATA  66 'offset' <uint>
       61 't' 6A 'blob_chunk'  62 'id' <uint>

(keys in canonical order: shorter first, then bytewise; every head the shortest).
`*_parts` give what goes around DATA, so a sender seals a piece without building
the frame apart; `parse_*` accept only those bytes, with the same bounds
`decode_frame` checks, and say None to anything else, which then goes through
`decode_frame` as every other frame. The bytes on the wire are unchanged (a test
compares them with `encode_frame`'s).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from strongroom.peer.frames import BLOB_PIECE_BYTES
from strongroom.peer.request_id import MAX_REQUEST_ID

_MAX_OFFSET = 2**63 - 1  # frames.uint()'s bound
_BODY_START = b"\xa3\x61b\xa3\x63end"
_DATA_KEY = b"\x64data"
_OFFSET_KEY = b"\x66offset"
_TYPE_AND_ID = b"\x61t\x69blob_data\x62id"
_CHUNK_START = b"\xa3\x61b\xa2\x64data"
_CHUNK_TYPE_AND_ID = b"\x61t\x6ablob_chunk\x62id"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class BlobData(NamedTuple):
    request_id: int
    offset: int
    data: bytes | memoryview  # a view into the frame when the frame is one
    end: bool


class BlobChunk(NamedTuple):
    request_id: int
    offset: int
    data: bytes


def _head(major: int, value: int) -> bytes:
    """The shortest CBOR head of `major` type with argument `value`."""
    if value < 24:
        return bytes([major | value])
    if value < 0x100:
        return bytes([major | 24, value])
    if value < 0x10000:
        return bytes([major | 25]) + _U16.pack(value)
    if value < 0x100000000:
        return bytes([major | 26]) + _U32.pack(value)
    return bytes([major | 27]) + _U64.pack(value)


def blob_data_parts(request_id: int, offset: int, size: int, end: bool) -> tuple[bytes, bytes]:
    """The frame's bytes before and after its `size` data bytes."""
    before = _BODY_START + (b"\xf5" if end else b"\xf4") + _DATA_KEY + _head(0x40, size)
    after = _OFFSET_KEY + _head(0, offset) + _TYPE_AND_ID + _head(0, request_id)
    return before, after


def blob_chunk_parts(request_id: int, offset: int, size: int) -> tuple[bytes, bytes]:
    """A blob_chunk frame's bytes before and after its `size` data bytes."""
    before = _CHUNK_START + _head(0x40, size)
    after = _OFFSET_KEY + _head(0, offset) + _CHUNK_TYPE_AND_ID + _head(0, request_id)
    return before, after


def read_uint(raw: bytes | memoryview, pos: int, limit: int) -> tuple[int, int] | None:
    """A shortest-form unsigned integer at `pos` (major type 0): (value, end) or None."""
    if pos >= len(raw):
        return None
    initial = raw[pos]
    if initial >> 5:
        return None
    info = initial & 0x1F
    if info < 24:
        value, end = info, pos + 1
    elif info == 24 and pos + 2 <= len(raw):
        value, end = raw[pos + 1], pos + 2
        if value < 24:
            return None
    elif info == 25 and pos + 3 <= len(raw):
        value, end = _U16.unpack_from(raw, pos + 1)[0], pos + 3
        if value < 0x100:
            return None
    elif info == 26 and pos + 5 <= len(raw):
        value, end = _U32.unpack_from(raw, pos + 1)[0], pos + 5
        if value < 0x10000:
            return None
    elif info == 27 and pos + 9 <= len(raw):
        value, end = _U64.unpack_from(raw, pos + 1)[0], pos + 9
        if value < 0x100000000:
            return None
    else:
        return None
    return (value, end) if value <= limit else None


class _Found(NamedTuple):
    data_start: int
    data_end: int
    offset: int
    request_id: int


def _data_offset_id(raw: bytes | memoryview, pos: int, type_and_id: bytes) -> _Found | None:
    """From a bytes head at `pos`: the data, then the offset, `type_and_id` and a request
    id that ends the frame; None if the bytes are anything else."""
    # The data's length: a bytes head (major type 2), shortest form, at most one piece.
    if pos >= len(raw) or raw[pos] >> 5 != 2:
        return None
    length = read_uint(bytes([raw[pos] & 0x1F, *raw[pos + 1 : pos + 3]]), 0, BLOB_PIECE_BYTES)
    if length is None:
        return None
    size, head = length
    data_start = pos + head
    data_end = data_start + size
    if raw[data_end : data_end + len(_OFFSET_KEY)] != _OFFSET_KEY:
        return None
    offset = read_uint(raw, data_end + len(_OFFSET_KEY), _MAX_OFFSET)
    if offset is None:
        return None
    pos = offset[1]
    if raw[pos : pos + len(type_and_id)] != type_and_id:
        return None
    request_id = read_uint(raw, pos + len(type_and_id), MAX_REQUEST_ID)
    if request_id is None or request_id[1] != len(raw):
        return None
    return _Found(data_start, data_end, offset[0], request_id[0])


def parse_blob_data(raw: bytes | memoryview) -> BlobData | None:
    """The fields of a canonical blob_data frame, or None if `raw` is not exactly one.
    From a memoryview (the phone's reader: SecureChannel.open_views) the data is a
    view of the frame's bytes, not a copy of them."""
    start = len(_BODY_START)
    if raw[:start] != _BODY_START or len(raw) <= start:
        return None
    flag = raw[start]
    if flag not in (0xF4, 0xF5):
        return None
    pos = start + 1
    if raw[pos : pos + len(_DATA_KEY)] != _DATA_KEY:
        return None
    found = _data_offset_id(raw, pos + len(_DATA_KEY), _TYPE_AND_ID)
    if found is None:
        return None
    data = raw[found.data_start : found.data_end]
    return BlobData(found.request_id, found.offset, data, flag == 0xF5)


def parse_blob_chunk(raw: bytes) -> BlobChunk | None:
    """The fields of a canonical blob_chunk frame, or None if `raw` is not exactly one."""
    if raw[: len(_CHUNK_START)] != _CHUNK_START:
        return None
    found = _data_offset_id(raw, len(_CHUNK_START), _CHUNK_TYPE_AND_ID)
    if found is None:
        return None
    return BlobChunk(found.request_id, found.offset, raw[found.data_start : found.data_end])
