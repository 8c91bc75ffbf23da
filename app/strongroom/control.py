"""The local control socket: how `strongroom pair` and friends reach a running box.

A Unix socket in the data directory, mode 0600: only the service user (and
root) can talk to it, so it needs no password. It offers a few JSON
endpoints, each mapped to what the PAIR button or the web UI would do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

SOCKET_NAME = "control.sock"


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


async def start_control(app: web.Application, data_dir: Path) -> web.AppRunner:
    path = socket_path(data_dir)
    path.unlink(missing_ok=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    old_umask = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return runner


async def call(
    data_dir: Path, method: str, route: str, body: Any = None, *, timeout_s: float = 10
) -> tuple[int, Any]:
    """Client side: send one request to the running box; raise OSError if it is not running."""
    connector = aiohttp.UnixConnector(path=str(socket_path(data_dir)))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.request(
            method, f"http://box{route}", json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None
