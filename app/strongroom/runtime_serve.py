"""Serving one aiohttp app for the runtime: every address of the host, each connection
behind a header deadline that also applies the LAN allowlist."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from strongroom.appliance.network import listen
from strongroom.header_deadline import HeaderDeadline


async def serve(
    stack: contextlib.AsyncExitStack,
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    *,
    admit: Callable[[str], bool],
    header_deadline_s: float,
    **runner_options: Any,
) -> int:
    """Serve `app` on every address of `host`; return the port it got. Its teardown
    (listeners closed, then the runner cleaned up) is pushed on `stack`.

    Each connection goes through a header deadline (against slowloris) that also
    refuses peers `admit` refuses (the LAN allowlist), before aiohttp sees a byte.
    """
    loop = asyncio.get_running_loop()
    runner = web.AppRunner(app, access_log=None, **runner_options)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    handler = runner.server
    assert handler is not None  # set by runner.setup()
    listeners, bound = await listen(
        loop,
        host,
        port,
        lambda: HeaderDeadline(handler(), header_deadline_s, loop, admit),
        ssl_context,
    )
    for listener in listeners:
        stack.callback(listener.close)
    return bound
