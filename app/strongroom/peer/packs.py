"""Packed messages (protocol.md §4, capability "packed"): the box's transport messages
several to a WebSocket message.

Each WebSocket message costs both ends more than its bytes: the box a frame header
and a `send`, the phone aiohttp's frame reader, a WSMessage, a wake-up of its reader
and a turn of the event loop. A phone that lists "packed" in its hello gets, from
the first message after the box's hello reply on, every message of the box as a
pack: one or more transport messages, each after its length (2 bytes, big-endian).
The box puts up to PACK_MESSAGES pieces of a blob download in one pack; any other
message is a pack of one. Phone to box nothing changes.
"""

from __future__ import annotations

from strongroom.noise import MAX_MESSAGE_LEN
from strongroom.noise.primitives import TAGLEN
from strongroom.peer.channel import ChannelError

CAPABILITY = "packed"
LENGTH = 2  # bytes of each transport message's length in a pack
PACK_MESSAGES = 4  # transport messages of a blob download the box packs together, at most
# The largest pack a phone that announced "packed" accepts: four full transport
# messages. aiohttp refuses a message whose size is >= its `max_msg_size`: the
# client is given one more (WS_MAX_PACKED_MSG_SIZE).
MAX_PACK_BYTES = PACK_MESSAGES * (LENGTH + MAX_MESSAGE_LEN)
WS_MAX_PACKED_MSG_SIZE = MAX_PACK_BYTES + 1


def unpack(data: bytes) -> list[memoryview]:
    """The transport messages of one pack, as views of its bytes (nothing copied).

    ChannelError (the phone closes with 4400) for a pack above MAX_PACK_BYTES, an
    empty one, a length below a tag's or beyond the pack's end, or a cut length."""
    size = len(data)
    if size > MAX_PACK_BYTES:
        raise ChannelError(f"a pack of {size} bytes exceeds {MAX_PACK_BYTES}")
    view = memoryview(data)
    messages = []
    pos = 0
    while pos < size:
        start = pos + LENGTH
        if start > size:
            raise ChannelError("a pack cut inside a message's length")
        end = start + ((data[pos] << 8) | data[pos + 1])
        if end - start < TAGLEN or end > size:
            raise ChannelError("a pack with a too short or overrunning transport message")
        messages.append(view[start:end])
        pos = end
    if not messages:
        raise ChannelError("an empty pack")
    return messages


def packed(message: bytes | bytearray) -> bytes:
    """A pack of one: `message` after its length (every message but a download's)."""
    return len(message).to_bytes(LENGTH, "big") + message
