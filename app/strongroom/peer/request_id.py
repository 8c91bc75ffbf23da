"""The request id of a frame that cannot be decoded, when it can still be read.

protocol.md §5: an error about a frame carries that frame's `id`. A frame the
strict decoder refuses (not canonical, indefinite lengths, floats, tags, too
deep, a wrong shape) often still says which request it was, and a phone
matching replies to requests by id needs that id to fail the right request
instead of waiting for a reply that never comes. So the box reads it leniently:
the frame must be a map (of definite or indefinite length) with a text key
"id" at its top level whose value is an unsigned integer below 2^53 (in a head
of any length). Otherwise the error carries id 0.

The walk is bounded: iterative over the top-level map, skipping each value with
an explicit stack (no recursion), never past the end of the bytes.
"""

from __future__ import annotations

MAX_REQUEST_ID = 2**53 - 1
_BREAK = 0xFF


class _Unreadable(Exception):
    pass


def _head(data: bytes, pos: int) -> tuple[int, int, int | None, int]:
    """(major type, additional info, argument or None if indefinite, next position)."""
    if pos >= len(data):
        raise _Unreadable
    byte = data[pos]
    major, info = byte >> 5, byte & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    if info == 31:
        return major, info, None, pos
    if info > 27:
        raise _Unreadable
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise _Unreadable
    return major, info, int.from_bytes(data[pos : pos + size], "big"), pos + size


def _skip(data: bytes, pos: int) -> int:
    """The position after the item starting at `pos` (any well-formed CBOR)."""
    # Each entry: items still to skip at that level, or -1 for "until a break byte".
    pending = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if pending[-1] < 0 and pos < len(data) and data[pos] == _BREAK:
            pos += 1
            pending.pop()
            continue
        if pending[-1] > 0:
            pending[-1] -= 1
        major, _, arg, pos = _head(data, pos)
        if major in (0, 1, 7):
            continue  # integers, simple values and floats: the head is the whole item
        if major in (2, 3):
            if arg is None:
                pending.append(-1)  # chunks up to a break
            else:
                pos += arg
                if pos > len(data):
                    raise _Unreadable
        elif major == 6:
            if arg is None:
                raise _Unreadable
            pending.append(1)  # a tag wraps one item
        elif arg is None:
            pending.append(-1)
        else:
            count = arg * 2 if major == 5 else arg
            if count > len(data) - pos:
                raise _Unreadable
            pending.append(count)
    return pos


def readable_request_id(raw: bytes) -> int:
    """The `id` of the top-level map of `raw` if it can be read (see module doc), else 0."""
    try:
        major, _, count, pos = _head(raw, 0)
        if major != 5:
            return 0
        seen = 0
        while count is None or seen < count:
            if count is None and pos < len(raw) and raw[pos] == _BREAK:
                return 0
            seen += 1
            key_major, _, length, key_at = _head(raw, pos)
            if key_major == 3 and length == 2 and raw[key_at : key_at + 2] == b"id":
                value_major, _, value, _ = _head(raw, key_at + 2)
                if value_major == 0 and value is not None and value <= MAX_REQUEST_ID:
                    return value
                return 0
            pos = _skip(raw, _skip(raw, pos))
    except _Unreadable:
        return 0
    return 0
