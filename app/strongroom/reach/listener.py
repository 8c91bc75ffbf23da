"""The box's onion listener: a Unix socket that tor's `HiddenServicePort` targets.

Only the peer endpoint is served there (no web UI, no control API): whoever
comes through the onion is a phone or nobody. A Unix socket, not a port: the
box's unit keeps `IPAddressDeny=any` (systemd's IP filter ignores Unix sockets)
and no other local program can reach the box by pretending to be tor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from strongroom.header_deadline import HeaderDeadline

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OnionListener:
    def __init__(self, socket_path: Path, endpoint: Endpoint, *, header_deadline_s: float) -> None:
        self.socket_path = socket_path
        self._endpoint = endpoint
        self._deadline_s = header_deadline_s
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        if self._server is not None:
            return
        app = web.Application()
        app.router.add_get("/peer", self._endpoint)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        loop = asyncio.get_running_loop()
        self.socket_path.unlink(missing_ok=True)
        # tor connects as its own user, in the socket directory's group (02750).
        old_umask = os.umask(0o117)
        try:
            self._server = await loop.create_unix_server(
                lambda: HeaderDeadline(runner.server(), self._deadline_s, loop),  # type: ignore[misc]
                str(self.socket_path),
            )
        finally:
            os.umask(old_umask)
        self._runner = runner

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.socket_path.unlink(missing_ok=True)
