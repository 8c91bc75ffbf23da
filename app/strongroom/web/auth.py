"""Who may do what: login throttling and the server-side role check.

Every handler is wrapped with `require_role(...)`: the check runs on the
server for every request, whatever the page shows or hides. Failed logins are
counted per username and per client address; five failures lock that key out
for fifteen minutes (the counter is in memory: a restart clears it, and a
restart needs physical access or the admin).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from yarl import URL

from strongroom.web.sessions import Session

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN = "admin"
ARCHIVIST = "archivist"
AUDITOR = "auditor"
# What each role may reach (issue 6): admin everything; archivist search,
# record view, export, retention, holds; auditor the audit trail and reports.
ALL_ROLES = (ADMIN, ARCHIVIST, AUDITOR)

SESSION_KEY: web.RequestKey[Session] = web.RequestKey("session", Session)


@dataclass
class _Failures:
    count: int
    first_at: float
    locked_until: float = 0.0


class RateLimiter:
    """Counts failures per key; `max_failures` within `window_s` locks the key for `lockout_s`."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_s: float = 15 * 60.0,
        lockout_s: float = 15 * 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.clock = clock
        self._failures: dict[str, _Failures] = {}

    def locked(self, *keys: str) -> bool:
        now = self.clock()
        return any(
            (entry := self._failures.get(key)) is not None and entry.locked_until > now
            for key in keys
        )

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            entry = self._failures.get(key)
            if entry is None or now - entry.first_at > self.window_s:
                entry = self._failures[key] = _Failures(0, now)
            entry.count += 1
            if entry.count >= self.max_failures:
                entry.locked_until = now + self.lockout_s
                entry.count = 0
                entry.first_at = now

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


def session_of(request: web.Request) -> Session:
    return request[SESSION_KEY]


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"


class Forbidden(Exception):
    """The logged-in user's role does not allow this page or action."""


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: the user must be logged in (else: login page) with one of `roles` (else 403)."""
    allowed = frozenset(roles)
    unknown = allowed - set(ALL_ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            session = session_of(request)
            if not session.logged_in:
                if request.method == "GET":
                    raise web.HTTPSeeOther(str(URL("/login").with_query(next=request.path_qs)))
                raise web.HTTPSeeOther("/login")
            if session.role not in allowed:
                raise Forbidden(request.path)
            return await handler(request)

        checked.allowed_roles = allowed  # type: ignore[attr-defined]
        return checked

    return wrap


def safe_next(target: str | None) -> str:
    """Only same-site absolute paths are followed after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
