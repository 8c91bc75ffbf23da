"""Web sessions and wrong-passphrase counters survive a restart (or a power cut).

They are kept in DATA/web-sessions.json (mode 0600, replaced atomically): the
logged-in sessions by the SHA-256 of their id (the file holds no usable
cookie, and never the wizard's scratch data) and the login and unlock
throttles. Written at once after a login, a logout or a wrong passphrase, every
few seconds when only "last seen" times moved, and at shutdown. A missing or
damaged file starts empty: nobody is locked out by a broken file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from strongroom.identity.atomic_file import write_atomically
from strongroom.web.state import STATE, WebState

log = logging.getLogger(__name__)

FILE_NAME = "web-sessions.json"
FORMAT = "strongroom-web-sessions"
FLUSH_INTERVAL_S = 10.0


def path_of(state: WebState) -> Path:
    return state.box.config.data_dir / FILE_NAME


def load(state: WebState) -> None:
    try:
        body: Any = json.loads(path_of(state).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        log.warning("ignoring damaged %s: %s", FILE_NAME, exc)
        return
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        log.warning("ignoring %s: not a sessions file", FILE_NAME)
        return
    state.sessions.load(body.get("sessions"))
    state.login_limiter.load(body.get("login_failures"))
    state.unlock_limiter.load(body.get("unlock_failures"))


def dirty(state: WebState) -> bool:
    return state.sessions.dirty or state.login_limiter.dirty or state.unlock_limiter.dirty


def save(state: WebState) -> None:
    """Write the file if anything changed (blocking: fsync; call it in a thread)."""
    if not dirty(state) or not state.box.config.data_dir.is_dir():
        return
    body = {
        "format": FORMAT,
        "version": 1,
        "sessions": state.sessions.dump(),
        "login_failures": state.login_limiter.dump(),
        "unlock_failures": state.unlock_limiter.dump(),
    }
    state.sessions.dirty = state.login_limiter.dirty = state.unlock_limiter.dirty = False
    try:
        write_atomically(path_of(state), json.dumps(body).encode("utf-8"), mode=0o600)
    except OSError as exc:  # a full disk must not take the web UI down
        log.warning("cannot save %s: %s", FILE_NAME, exc)


async def save_now(request: web.Request) -> None:
    await asyncio.to_thread(save, request.app[STATE])


def attach(app: web.Application) -> None:
    """Load at start-up, flush periodically, save at shutdown."""
    flusher: list[asyncio.Task[None]] = []

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await asyncio.to_thread(save, app[STATE])

    async def start(_app: web.Application) -> None:
        await asyncio.to_thread(load, app[STATE])
        flusher.append(asyncio.create_task(flush_forever()))

    async def stop(_app: web.Application) -> None:
        for task in flusher:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(save, app[STATE])

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
