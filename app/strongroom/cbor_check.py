"""A strict pre-check of CBOR bytes before any decoder sees them.

Frames and the records inside them come from the network, so before cbor2
builds Python objects we walk the bytes ourselves and accept only the small
CBOR subset the protocol uses:
unsigned and negative integers, byte and text strings, arrays, maps, false,
true and null, all of definite length, nested at most MAX_DEPTH deep. No tags
(cbor2 would otherwise compile regular expressions or build shared
references), no floats, no indefinite lengths. The walk is iterative, so a
hostile nesting depth cannot exhaust the Python stack.

The walk also proves the bytes are deterministic (canonical) CBOR, as
RFC 7049 section 3.9 and cbor2's `canonical=True` define it: every head in its
shortest form, and the keys of every map in strictly increasing order of
their encoded bytes, shorter first (which also forbids duplicate keys). So a
frame that passes needs no re-encoding to prove it canonical: that used to
cost a second encoding of every frame, attachments' 64 KiB pieces included.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 8


class CborRejected(ValueError):
    """The bytes use CBOR outside the protocol's subset, are malformed, or not canonical.

    `canonical` is True when the bytes are well-formed CBOR of the subset in a
    non-canonical encoding (a long head, keys out of order or repeated).
    """

    def __init__(self, message: str, *, canonical: bool = False) -> None:
        super().__init__(message)
        self.canonical = canonical


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
        raise CborRejected("integer or length not in its shortest form", canonical=True)
    return value, end


def check_cbor(data: bytes) -> None:
    """Raise CborRejected unless `data` is exactly one canonical item of the protocol's subset."""
    # Written for speed: the box checks two items per pushed record, a phone every ack
    # (~40 items, half of them 32-byte hashes). One loop, locals only, and the
    # one- and two-byte heads (every hash, signature and 1 KiB text) read inline
    # instead of through _argument: same checks, in the same order, as there.
    size = len(data)
    pos = 0
    remaining = 1  # items still expected at the current level (the top holds one)
    # The current level's map state, None for an array or the top:
    # [where the current key starts, the previous key's bytes or None].
    state: list[Any] | None = None
    outer: list[tuple[int, list[Any] | None]] = []  # the enclosing levels
    depth = 0  # len(outer)
    while True:
        if remaining == 0:
            if not depth:
                break
            remaining, state = outer.pop()
            depth -= 1
            continue
        remaining -= 1
        if state is not None:
            if remaining & 1:  # an odd count left: this item is a key
                state[0] = pos
            else:  # a value: the key before it ended here
                key = data[state[0] : pos]
                previous = state[1]
                if previous is not None and (
                    len(key) < len(previous) or (len(key) == len(previous) and key <= previous)
                ):
                    raise CborRejected(
                        "map keys are not in canonical order (or repeat)", canonical=True
                    )
                state[1] = key
        if pos >= size:
            raise CborRejected("truncated: an item is missing")
        head = data[pos]
        pos += 1
        major = head >> 5
        info = head & 0x1F
        if major >= 6:
            if major == 6:
                raise CborRejected("CBOR tags are not allowed")
            if info not in (20, 21, 22):  # false, true, null
                raise CborRejected("floats, undefined and simple values are not allowed")
            continue
        if info < 24:
            value = info
        elif info == 24:
            if pos >= size:
                raise CborRejected("truncated item head")
            value = data[pos]
            pos += 1
            if value < 24:
                raise CborRejected("integer or length not in its shortest form", canonical=True)
        elif info == 25:
            if pos + 2 > size:
                raise CborRejected("truncated item head")
            value = (data[pos] << 8) | data[pos + 1]
            pos += 2
            if value < 256:
                raise CborRejected("integer or length not in its shortest form", canonical=True)
        else:
            value, pos = _argument(data, pos, info)
        if major < 2:  # unsigned and negative integers
            continue
        if major < 4:  # byte and text strings
            if value > size - pos:
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
        if count > size - pos:
            raise CborRejected("container claims more items than there are bytes")
        if depth >= MAX_DEPTH:
            raise CborRejected(f"nested deeper than {MAX_DEPTH}")
        outer.append((remaining, state))
        depth += 1
        remaining = count
        state = [0, None] if major == 5 else None
    if pos != size:
        raise CborRejected("trailing bytes after the item")
