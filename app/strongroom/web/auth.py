"""Who may do what: login throttling and the server-side role check.

Every handler is wrapped with `require_role(...)`: the check runs on the
server for every request, whatever the page shows or hides. Failed logins are
counted per account and address, with a growing back-off (`throttle.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

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
    """Only same-site absolute paths are followed after login (no open redirect).

    A browser's URL parser drops tabs and newlines and reads a backslash as a slash,
    so "/\t/evil.example/" is "//evil.example/" to it: a path with any of those, or
    any other space or control character, or one that parses with a host, is refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(c.isspace() or not c.isprintable() for c in target):
        return "/"
    url = URL(target)
    if url.is_absolute() or url.host:
        return "/"
    return target
