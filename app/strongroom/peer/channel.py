"""The encrypted frame channel: frames in, Noise transport messages out, and back.

A frame may be larger than one Noise message (65519 bytes of plaintext), so
each transport message's plaintext starts with one byte: 0x01 "more
fragments of this frame follow", 0x00 "this is the frame's last fragment".
Most frames are one message with a 0x00 prefix. Reassembly is bounded by the
maximum frame size, so a peer cannot make the other side buffer more.
Sans-I/O: the caller moves the bytes.
"""

from __future__ import annotations

from strongroom.noise import MAX_PLAINTEXT_LEN, TransportSession

FINAL = 0x00
MORE = 0x01
MAX_FRAGMENT = MAX_PLAINTEXT_LEN - 1


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

    def open(self, message: bytes) -> bytes | None:
        """Decrypt one transport message; return a whole frame once its last fragment is in.

        Raises a NoiseError if the message does not authenticate (forged, replayed,
        reordered) and ChannelError if the fragment flag or the size is wrong.
        """
        plain = self._transport.decrypt(message)
        if not plain or plain[0] not in (FINAL, MORE):
            raise ChannelError("transport message without a valid fragment flag")
        if len(self._partial) + len(plain) - 1 > self._max_frame_bytes:
            raise ChannelError(f"frame exceeds {self._max_frame_bytes} bytes")
        if plain[0] == MORE:
            self._partial += plain[1:]
            return None
        if not self._partial:
            return plain[1:]
        self._partial += plain[1:]
        frame = bytes(self._partial)
        self._partial.clear()
        return frame
