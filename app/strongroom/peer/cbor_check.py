"""A strict pre-check of CBOR bytes before any decoder sees them.

Frames come from the network, so before cbor2 builds Python objects we walk
the bytes ourselves and accept only the small CBOR subset the protocol uses:
unsigned and negative integers, byte and text strings, arrays, maps, false,
true and null, all of definite length, nested at most MAX_DEPTH deep. No tags
(cbor2 would otherwise compile regular expressions or build shared
references), no floats, no indefinite lengths. The walk is iterative, so a
hostile nesting depth cannot exhaust the Python stack.
"""

from __future__ import annotations

MAX_DEPTH = 8


class CborRejected(ValueError):
    """The bytes use CBOR outside the protocol's subset, or are malformed."""


def _argument(data: bytes, pos: int, info: int) -> tuple[int, int]:
    """The argument of the head at data[pos-1]; returns (value, next position)."""
    if info < 24:
        return info, pos
    if info > 27:
        raise CborRejected("indefinite length or reserved additional information")
    size = 1 << (info - 24)
    end = pos + size
    if end > len(data):
        raise CborRejected("truncated item head")
    value = int.from_bytes(data[pos:end], "big")
    # Deterministic encoding: the shortest head, always.
    if (size == 1 and value < 24) or (size > 1 and value < (1 << (4 * size))):
        raise CborRejected("integer or length not in its shortest form")
    return value, end


def check_cbor(data: bytes) -> None:
    """Raise CborRejected unless `data` is exactly one item of the protocol's CBOR subset."""
    pos = 0
    # Each entry counts the items still expected at one nesting level.
    pending = [1]
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        if pos >= len(data):
            raise CborRejected("truncated: an item is missing")
        head = data[pos]
        pos += 1
        major, info = head >> 5, head & 0x1F
        if major == 7:
            if info not in (20, 21, 22):  # false, true, null
                raise CborRejected("floats, undefined and simple values are not allowed")
            continue
        if major == 6:
            raise CborRejected("CBOR tags are not allowed")
        value, pos = _argument(data, pos, info)
        if major in (0, 1):
            continue
        if major in (2, 3):
            if value > len(data) - pos:
                raise CborRejected("truncated string")
            if major == 3:
                try:
                    data[pos : pos + value].decode("utf-8")
                except UnicodeDecodeError:
                    raise CborRejected("text string is not valid UTF-8") from None
            pos += value
            continue
        # Arrays and maps.
        count = value * 2 if major == 5 else value
        if count > len(data) - pos:
            raise CborRejected("container claims more items than there are bytes")
        if len(pending) > MAX_DEPTH:
            raise CborRejected(f"nested deeper than {MAX_DEPTH}")
        pending.append(count)
    if pos != len(data):
        raise CborRejected("trailing bytes after the item")
