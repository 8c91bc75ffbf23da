"""`ack` frames of records and blobs read without a general CBOR codec (protocol.md §6.1).

A phone pushing a backlog reads one ack per record. `decode_frame` costs it
~15-35 µs an ack, most of it the strict walk of ~40 CBOR items (cbor_check),
half of them the 32-byte hashes of the inclusion and consistency proofs; the
rest of the phone's work per push is about as much. The box writes every such
ack one way (frames.record_ack, head_chain adds `consistency`), so the phone
recognises those exact bytes instead, as the box does with pushes
(push_frames.py):

    A3 61 'b' A7|A8
          62 'at' <uint>  63 'ref' <bytes 16..32>  64 'kind' 66 'record' | 64 'blob'
          65 'proof' <array of 58 20 HASH>  69 'duplicate' F4|F5  69 'log_index' <uint>
          69 'tree_head' A4 69 'root_hash' 78 40 HEX(64)  69 'signature' 78 80 HEX(128)
                            69 'tree_size' <uint>  6C 'timestamp_ms' <uint>
          [6B 'consistency' A2 64 'size' <uint> 65 'proof' <array of 58 20 HASH>]
       61 't' 63 'ack'  62 'id' <uint>

(keys in canonical order: shorter first, then bytewise; every head the
shortest). `parse_ack` accepts only those bytes, with the bounds `decode_frame`
checks (frames.SCHEMAS), and gives the Frame `decode_frame` would; it says None
to anything else (mail acks, anything odd), which then goes through
`decode_frame` as every other frame. What the ack proves is checked after, as
before (client/proofs.py, client/heads.py).
"""

from __future__ import annotations

from typing import Any

from strongroom.peer.blob_frames import read_uint
from strongroom.peer.frames import Frame
from strongroom.peer.request_id import MAX_REQUEST_ID

_MAX_UINT = 2**63 - 1  # frames.uint()'s bound
_HASH = 34  # an encoded 32-byte string: 58 20 and the bytes
_START = b"\xa3\x61b"
_AT = b"\x62at"
_REF = b"\x63ref"
_KINDS = {"record": b"\x64kind\x66record", "blob": b"\x64kind\x64blob"}
_PROOF = b"\x65proof"
_DUPLICATE = b"\x69duplicate"
_LOG_INDEX = b"\x69log_index"
_ROOT_HASH = b"\x69tree_head\xa4\x69root_hash\x78\x40"
_SIGNATURE = b"\x69signature\x78\x80"
_TREE_SIZE = b"\x69tree_size"
_TIMESTAMP = b"\x6ctimestamp_ms"
_CONSISTENCY = b"\x6bconsistency\xa2\x64size"
ACK_TYPE_AND_ID = b"\x61t\x63ack\x62id"


def _hashes(raw: bytes, pos: int, limit: int) -> tuple[list[bytes], int] | None:
    """An array of at most `limit` 32-byte strings at `pos` (frames.list_of(bytes32))."""
    if pos >= len(raw):
        return None
    head = raw[pos]
    if 0x80 <= head < 0x98:
        count, pos = head - 0x80, pos + 1
    elif head == 0x98 and pos + 1 < len(raw) and 24 <= raw[pos + 1]:
        count, pos = raw[pos + 1], pos + 2
    else:
        return None
    end = pos + count * _HASH
    if count > limit or end > len(raw):
        return None
    # Every item's head, read with two strided slices: 58 20, a 32-byte string.
    if raw[pos:end:_HASH] != b"\x58" * count or raw[pos + 1 : end : _HASH] != b"\x20" * count:
        return None
    return [raw[p + 2 : p + _HASH] for p in range(pos, end, _HASH)], end


def _text(raw: bytes, pos: int, size: int) -> str | None:
    """`size` bytes of ASCII without NUL at `pos` as text (frames.text(size, size))."""
    chunk = raw[pos : pos + size]
    if len(chunk) != size or not chunk.isascii() or b"\x00" in chunk:
        return None
    return chunk.decode("ascii")


def _key_uint(raw: bytes, pos: int, key: bytes) -> tuple[int, int] | None:
    if not raw.startswith(key, pos):
        return None
    return read_uint(raw, pos + len(key), _MAX_UINT)


def _ref(raw: bytes, pos: int) -> tuple[bytes, int] | None:
    """A bytes string of 16..32 bytes at `pos`, shortest head (frames.data(16, 32))."""
    if pos + 1 >= len(raw):
        return None
    head = raw[pos]
    if 0x50 <= head <= 0x57:
        start, end = pos + 1, pos + 1 + head - 0x40
    elif head == 0x58 and 24 <= raw[pos + 1] <= 32:
        start, end = pos + 2, pos + 2 + raw[pos + 1]
    else:
        return None
    return (raw[start:end], end) if end <= len(raw) else None


def _kind(raw: bytes, pos: int) -> str | None:
    for kind, key in _KINDS.items():
        if raw.startswith(key, pos):
            return kind
    return None


def parse_ack(raw: bytes) -> Frame | None:
    """The Frame `decode_frame` reads from a canonical record or blob ack, or None if
    `raw` is not exactly one."""
    if not raw.startswith(_START) or len(raw) < 8 or raw[3] not in (0xA7, 0xA8):
        return None
    at = _key_uint(raw, 4, _AT)
    if at is None or not raw.startswith(_REF, at[1]):
        return None
    ref = _ref(raw, at[1] + len(_REF))
    if ref is None:
        return None
    pos = ref[1]
    kind = _kind(raw, pos)
    if kind is None:
        return None
    pos += len(_KINDS[kind])
    if not raw.startswith(_PROOF, pos):
        return None
    proof = _hashes(raw, pos + len(_PROOF), 64)
    if proof is None or not raw.startswith(_DUPLICATE, proof[1]):
        return None
    pos = proof[1] + len(_DUPLICATE)
    if pos >= len(raw) or raw[pos] not in (0xF4, 0xF5):
        return None
    duplicate = raw[pos] == 0xF5
    log_index = _key_uint(raw, pos + 1, _LOG_INDEX)
    if log_index is None or not raw.startswith(_ROOT_HASH, log_index[1]):
        return None
    pos = log_index[1] + len(_ROOT_HASH)
    root_hash = _text(raw, pos, 64)
    pos += 64
    if root_hash is None or not raw.startswith(_SIGNATURE, pos):
        return None
    pos += len(_SIGNATURE)
    signature = _text(raw, pos, 128)
    if signature is None:
        return None
    tree_size = _key_uint(raw, pos + 128, _TREE_SIZE)
    if tree_size is None:
        return None
    timestamp = _key_uint(raw, tree_size[1], _TIMESTAMP)
    if timestamp is None:
        return None
    pos = timestamp[1]
    body: dict[str, Any] = {
        "at": at[0],
        "ref": ref[0],
        "kind": kind,
        "proof": proof[0],
        "duplicate": duplicate,
        "log_index": log_index[0],
        "tree_head": {
            "root_hash": root_hash,
            "signature": signature,
            "tree_size": tree_size[0],
            "timestamp_ms": timestamp[0],
        },
    }
    if raw[3] == 0xA8:
        size_of = _key_uint(raw, pos, _CONSISTENCY)
        if size_of is None or not raw.startswith(_PROOF, size_of[1]):
            return None
        nodes = _hashes(raw, size_of[1] + len(_PROOF), 128)
        if nodes is None:
            return None
        body["consistency"] = {"size": size_of[0], "proof": nodes[0]}
        pos = nodes[1]
    if not raw.startswith(ACK_TYPE_AND_ID, pos):
        return None
    request_id = read_uint(raw, pos + len(ACK_TYPE_AND_ID), MAX_REQUEST_ID)
    if request_id is None or request_id[1] != len(raw):
        return None
    return Frame("ack", request_id[0], body)
