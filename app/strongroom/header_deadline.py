"""A deadline for HTTP request headers, against slowloris.

aiohttp 3.x waits for request headers for as long as the client keeps the
socket open, so twenty clients sending one header byte at a time would hold
twenty connections for ever. This thin asyncio protocol sits in front of
aiohttp's per-connection handler, forwards everything unchanged, and closes
the connection if the first request's headers have not ended within the
deadline. Idle keep-alive connections are then aiohttp's own keepalive
timeout's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

_END_OF_HEADERS = b"\r\n\r\n"


class HeaderDeadline(asyncio.Protocol):
    def __init__(
        self,
        inner: asyncio.Protocol,
        timeout_s: float,
        loop: asyncio.AbstractEventLoop,
        admit: Callable[[str], bool] | None = None,
    ) -> None:
        self._inner = inner
        # Who may connect at all (the LAN allowlist), checked before aiohttp sees a byte.
        self._admit = admit
        self._refused = False
        self._timeout_s = timeout_s
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if self._admit is not None and not (peer and self._admit(str(peer[0]))):
            self._refused = True
            transport.close()
            return
        self._timer = self._loop.call_later(self._timeout_s, self._too_slow)
        self._inner.connection_made(transport)

    def _too_slow(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._timer is not None:
            # Keep the last 3 bytes so an end of headers split across reads is seen.
            window = self._tail + data
            if _END_OF_HEADERS in window:
                self._timer.cancel()
                self._timer = None
            else:
                self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return None if self._refused else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if not self._refused:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if not self._refused:
            self._inner.resume_writing()

    def __getattr__(self, name: str) -> Any:
        # Anything else aiohttp or asyncio may look up goes to the real handler.
        return getattr(self._inner, name)
