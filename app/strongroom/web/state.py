"""What every handler needs: the box, sessions, limiters, jobs, and two helpers.

`read()` runs a query on a fresh reader connection in a worker thread (the
archive is SQLCipher: reads are quick but still blocking I/O), and `audit()`
writes an audit event as the logged-in user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from strongroom.appliance.health import DiskSample
from strongroom.archive.db import Connection
from strongroom.archive.message_count import MessageCount
from strongroom.archive.store import WriteOpOf
from strongroom.box import Box
from strongroom.web.auth import session_of
from strongroom.web.jobs import JobRegistry
from strongroom.web.sessions import SessionStore
from strongroom.web.throttle import Throttle
from strongroom.web.users import PasswordHasher

T = TypeVar("T")
MAX_DISK_SAMPLES = 96


@dataclass
class WebState:
    box: Box
    clock: Callable[[], float]
    sessions: SessionStore
    login_limiter: Throttle
    unlock_limiter: Throttle
    jobs: JobRegistry
    hasher: PasswordHasher
    keystore_limits: dict[str, int]
    work_dir: Path  # where jobs write their files (exports in clear: wiped at start and stop)
    tls_fingerprint: str | None = None  # the certificate's: changes at each re-issue
    tls_key_fingerprint: str | None = None  # its key's (web/tls_key.py): stays the same
    disk_samples: list[DiskSample] = field(default_factory=list)
    # Where removable drives are mounted (drives.py); tests point these at tmp dirs.
    drive_roots: tuple[Path, ...] = (Path("/media"), Path("/run/media"), Path("/mnt"))
    drives_mounts_only: bool = True
    # The dashboard's message count, kept by adding what arrived since (message_count.py).
    message_count: MessageCount = field(default_factory=MessageCount)

    @property
    def secure_cookies(self) -> bool:
        return bool(self.box.config.tls)

    def sample_disk(self, used: int) -> None:
        """Keep a few dashboard readings to forecast when the disk will be full."""
        now = self.clock()
        if self.disk_samples and now - self.disk_samples[-1].at < 60:
            return
        self.disk_samples.append(DiskSample(now, used))
        del self.disk_samples[:-MAX_DISK_SAMPLES]


STATE: web.AppKey[WebState] = web.AppKey("strongroom_web_state", WebState)


def state_of(request: web.Request) -> WebState:
    return request.app[STATE]


async def read(request: web.Request, query: Callable[[Connection], T]) -> T:
    """Run `query` on one of the box's pooled reader connections, off the event loop."""
    box = state_of(request).box
    box.require_archive()
    if box.readers is None:
        raise web.HTTPServiceUnavailable(text="the box is locked")
    return await box.readers.run(query)


async def audit(
    request: web.Request, action: str, target: str = "", details: dict[str, Any] | None = None
) -> None:
    session = session_of(request)
    actor = session.username or f"anonymous@{request.remote or '?'}"
    await state_of(request).box.audit(actor, action, target, details)


async def submit(request: web.Request, op: WriteOpOf[T]) -> T:
    """Run one write op through the box's group committer; return its result."""
    committer = state_of(request).box.committer
    if committer is None:
        raise web.HTTPServiceUnavailable(text="the box is locked")
    return (await committer.submit(op)).result
