"""The encrypted frame channel: frames in, Noise transport messages out, and back.

A frame may be larger than one Noise message (65519 bytes of plaintext), so
each transport message's plaintext starts with one byte: 0x01 "more
fragments of this frame follow", 0x00 "this is the frame's last fragment".
Most frames are one message with a 0x00 prefix. Reassembly is bounded by the
maximum frame size, so a peer cannot make the other side buffer more.

0x02 "bundle": the message carries several whole frames, each preceded by its
length (2 bytes, big-endian). A side sends bundles only once the other has
listed "bundles" in its hello caps. Frames that are ready together (the acks
of one group commit, a phone's burst of pushes) then cost one encryption and
one WebSocket message instead of one each.
Sans-I/O: the caller moves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from strongroom.noise import MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, TransportSession

FINAL = 0x00
MORE = 0x01
BUNDLE = 0x02
MAX_FRAGMENT = MAX_PLAINTEXT_LEN - 1
_LENGTH = 2  # bytes of each frame's length inside a bundle
_FINAL_FLAG = bytes([FINAL])
_BUNDLE_FLAG = bytes([BUNDLE])
_TAG_ROOM = bytes(16)  # where an in-place encryption writes its tag
Plain = TypeVar("Plain", bytes, memoryview)

# The largest WebSocket message either side accepts (protocol.md §1): a Noise
# message of at most 65 535 bytes plus the selector byte in the first message.
MAX_WS_MESSAGE = MAX_MESSAGE_LEN + 1
# aiohttp refuses (1009) a message whose size is >= its `max_msg_size`, not only
# one above it: it is given one more than the largest size we accept. A test sends
# 65 536 and 65 537 bytes and checks both sides of the edge.
WS_MAX_MSG_SIZE = MAX_WS_MESSAGE + 1


def _bundles(frames: Sequence[bytes]) -> list[list[bytes]]:
    """`frames` in order, grouped as they share transport messages: a group of several
    is one bundle; a group of one goes alone (fragmented if it does not fit one)."""
    groups: list[list[bytes]] = []
    bundle: list[bytes] = []
    size = 1
    for frame in frames:
        if 1 + _LENGTH + len(frame) > MAX_PLAINTEXT_LEN:
            if bundle:
                groups.append(bundle)
            groups.append([frame])
            bundle, size = [], 1
            continue
        if size + _LENGTH + len(frame) > MAX_PLAINTEXT_LEN and bundle:
            groups.append(bundle)
            bundle, size = [], 1
        bundle.append(frame)
        size += _LENGTH + len(frame)
    if bundle:
        groups.append(bundle)
    return groups


def _bundle_parts(frames: list[bytes]) -> list[bytes]:
    parts = [_BUNDLE_FLAG]
    for frame in frames:
        parts.append(len(frame).to_bytes(_LENGTH, "big"))
        parts.append(frame)
    return parts


class ChannelError(Exception):
    """The peer broke the channel's framing: the connection must be closed."""


class SecureChannel:
    def __init__(self, transport: TransportSession, max_frame_bytes: int) -> None:
        self._transport = transport
        self._max_frame_bytes = max_frame_bytes
        self._partial = bytearray()

    @property
    def handshake_hash(self) -> bytes:
        return self._transport.handshake_hash

    def seal(self, frame: bytes) -> list[bytes]:
        """The transport messages carrying `frame`, in order."""
        if len(frame) <= MAX_FRAGMENT:
            return [self._transport.encrypt(bytes([FINAL]) + frame)]
        messages = []
        for start in range(0, len(frame), MAX_FRAGMENT):
            piece = frame[start : start + MAX_FRAGMENT]
            flag = FINAL if start + MAX_FRAGMENT >= len(frame) else MORE
            messages.append(self._transport.encrypt(bytes([flag]) + piece))
        return messages

    def seal_parts(self, parts: Sequence[bytes | memoryview]) -> list[bytes]:
        """`seal(b"".join(parts))`, joined once with the flag byte when the frame fits
        one message (a blob_data frame around a slice of a decrypted chunk)."""
        if sum(len(part) for part in parts) <= MAX_FRAGMENT:
            return [self._transport.encrypt(b"".join((_FINAL_FLAG, *parts)))]
        return self.seal(b"".join(parts))

    def seal_parts_into(self, parts: Sequence[bytes | memoryview], room: int) -> list[bytearray]:
        """`seal_parts`, each transport message in a bytearray after `room` free bytes
        (where the box's writer puts the WebSocket frame's header: peer/ws_send.py).
        A frame that fits one message is joined once with its flag byte, in the buffer
        that is sent, and encrypted there in place: no other copy of its bytes."""
        size = 1 + sum(len(part) for part in parts)
        if size - 1 > MAX_FRAGMENT:
            return [bytearray(room) + message for message in self.seal(b"".join(parts))]
        buf = bytearray().join((bytes(room), _FINAL_FLAG, *parts, _TAG_ROOM))
        self._transport.encrypt_into(buf, room, size)
        return [buf]

    def seal_many(self, frames: Sequence[bytes]) -> list[bytes]:
        """The transport messages carrying `frames` in order, as few as bundles allow.

        Only for a peer that announced "bundles". A frame too large to share a
        message goes alone (fragmented if need be), after the bundle before it.
        """
        messages: list[bytes] = []
        for group in _bundles(frames):
            if len(group) == 1:
                messages += self.seal(group[0])
            else:
                messages.append(self._transport.encrypt(b"".join(_bundle_parts(group))))
        return messages

    def seal_many_into(self, frames: Sequence[bytes], room: int) -> list[bytearray]:
        """`seal_many`, each transport message in a bytearray after `room` free bytes
        (the box's acks: peer/ws_send.py writes each with its WebSocket header in one
        write; aiohttp wrote a message over 16 KiB as two). A bundle is joined once, in
        the buffer that is sent, and encrypted there in place."""
        messages: list[bytearray] = []
        for group in _bundles(frames):
            if len(group) == 1:
                messages += self.seal_parts_into(group, room)
                continue
            parts = _bundle_parts(group)
            buf = bytearray().join((bytes(room), *parts, _TAG_ROOM))
            self._transport.encrypt_into(buf, room, len(buf) - room - len(_TAG_ROOM))
            messages.append(buf)
        return messages

    def open(self, message: bytes) -> list[bytes]:
        """Decrypt one transport message; return the whole frames it completes (maybe none).

        Raises a NoiseError if the message does not authenticate (forged, replayed,
        reordered) and ChannelError if the flag, a bundle's lengths or a size is wrong.
        """
        return self._frames(self._transport.decrypt(message), bytes)

    def open_views(self, message: bytes) -> list[memoryview]:
        """`open`, each frame a memoryview of the decrypted message (of its own bytes when
        it was fragmented): nothing is copied out of the decryption. The phone's reader
        hands a blob_data frame's piece to its hash and to the disk this way (two copies
        of 64 KiB fewer per frame: client/attachments.py)."""
        return self._frames(memoryview(self._transport.decrypt_mutable(message)), memoryview)

    def _frames(self, plain: Plain, whole: Callable[[bytes], Plain]) -> list[Plain]:
        if not plain or plain[0] not in (FINAL, MORE, BUNDLE):
            raise ChannelError("transport message without a valid fragment flag")
        if plain[0] == BUNDLE:
            if self._partial:
                raise ChannelError("a bundle in the middle of a fragmented frame")
            return self._unbundle(plain)
        if len(self._partial) + len(plain) - 1 > self._max_frame_bytes:
            raise ChannelError(f"frame exceeds {self._max_frame_bytes} bytes")
        if plain[0] == MORE:
            self._partial += plain[1:]
            return []
        if not self._partial:
            return [plain[1:]]
        self._partial += plain[1:]
        frame = whole(bytes(self._partial))
        self._partial.clear()
        return [frame]

    def _unbundle(self, plain: Plain) -> list[Plain]:
        frames = []
        pos = 1
        while pos < len(plain):
            end = pos + _LENGTH
            length = int.from_bytes(plain[pos:end], "big")
            if length == 0 or end + length > len(plain):
                raise ChannelError("a bundle with an empty or truncated frame")
            if length > self._max_frame_bytes:
                raise ChannelError(f"frame exceeds {self._max_frame_bytes} bytes")
            frames.append(plain[end : end + length])
            pos = end + length
        if len(frames) < 2:
            raise ChannelError("a bundle carries at least two frames")
        return frames
