"""The box's blob_data messages written as whole WebSocket frames, one write each.

aiohttp writes a binary message longer than 16 KiB as two writes, its 4-byte
frame header and then the message: two `send` system calls per 64 KiB piece of
an attachment, and on loopback two TCP segments, so the phone's loop may wake
for the header alone. The box's blob stream instead seals each piece into a
buffer that starts with ROOM free bytes (SecureChannel.seal_parts_into), puts
the frame's header there and hands the whole frame to the transport in one
write. The bytes on the wire are the ones aiohttp would send (an unmasked,
uncompressed, final binary frame: RFC 6455 §5.2, the server's side).

Flow control is aiohttp's own: after a write, while the transport's buffer is
above its high-water mark (the phone reads slower than the box sends) the send
waits for it to drain. That reaches into aiohttp's writer (its transport and
protocol, pinned in pyproject.toml); a WebSocket without them (another aiohttp,
compression negotiated, a test's stand-in) is written through `send_bytes`,
the same frames in two writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

# What a send raises once the connection is going: aiohttp's websocket writer raises
# ClientConnectionResetError ("Cannot write to closing transport"), a
# ConnectionResetError; the outbox and the head sender raise ConnectionResetError.
# aiohttp's RuntimeErrors ("Call .prepare() first") and any other are bugs: they
# must reach the log, not pass for a phone that went away.
CONNECTION_GONE = (ConnectionError,)

ROOM = 4  # a server's binary frame header for 126..65535 bytes (2 bytes below 126)
_BINARY_FINAL = 0x82  # FIN + opcode 2 (binary)


class FrameWriter:
    """Writes messages sealed after ROOM free bytes as binary frames of `ws`."""

    room = ROOM

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        writer = getattr(ws, "_writer", None)
        transport: asyncio.Transport | None = getattr(writer, "transport", None)
        protocol = getattr(writer, "protocol", None)
        raw = (
            transport is not None
            and getattr(writer, "compress", None) == 0
            and getattr(writer, "use_mask", None) is False
            and hasattr(protocol, "writing_paused")
            and hasattr(protocol, "_drain_helper")
        )
        self._writer = writer if raw else None
        self._transport = transport if raw else None
        self._protocol = protocol if raw else None

    @property
    def raw(self) -> bool:
        """Whether frames are written whole to the transport (else by send_bytes)."""
        return self._transport is not None

    async def __call__(self, buf: bytearray) -> None:
        """Send the message in buf[ROOM:] as one binary frame; return once the
        transport took it (and, if its buffer is full, once it drained)."""
        size = len(buf) - ROOM
        if not 0 <= size <= 0xFFFF:
            raise ValueError("a transport message is at most 65535 bytes")
        transport = self._transport
        if transport is None:
            await self._ws.send_bytes(memoryview(buf)[ROOM:])
            return
        if getattr(self._writer, "_closing", False) or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        if size < 126:
            buf[2], buf[3] = _BINARY_FINAL, size
            transport.write(memoryview(buf)[2:])
        else:
            buf[0], buf[1] = _BINARY_FINAL, 126
            buf[2:4] = size.to_bytes(2, "big")
            transport.write(buf)
        protocol = self._protocol
        if protocol is not None and protocol.writing_paused:
            await protocol._drain_helper()
