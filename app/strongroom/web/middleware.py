"""Request pipeline: security headers and error pages, session and language,
the box-phase gate (wizard / unlock page), and the CSRF check."""

from __future__ import annotations

import logging

from aiohttp import web

from strongroom.box import BoxLocked
from strongroom.unlock import BoxPhase
from strongroom.web import i18n
from strongroom.web.auth import SESSION_KEY, Forbidden, Handler, session_of
from strongroom.web.csrf import SAFE_METHODS, CsrfRejected, check_request
from strongroom.web.practice_zone import practice_zone_middleware
from strongroom.web.render import TRANSLATOR_KEY, render
from strongroom.web.sessions import SESSION_COOKIE
from strongroom.web.state import state_of

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

# A longer address gets the box's own 414 page (aiohttp's parser is allowed further,
# MAX_REQUEST_LINE in app.py, so that it never answers with its bare text page).
MAX_URL_BYTES = 8190
# Which explanation error.html gives for a status; anything else is "generic".
ERROR_KINDS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method",
    413: "too_large",
    414: "too_long",
    429: "too_many",
    500: "server",
    503: "unavailable",
}
# Headers an error response must keep when it is re-rendered as a page.
_KEPT_HEADERS = ("Allow", "Retry-After")

# Paths served whatever the phase (assets, the language switch).
_ALWAYS = ("/static/", "/lang")
# Wizard pages still shown once the box is READY (the last steps, a restore's outcome).
_WIZARD_AFTER_INIT = ("/setup/practice", "/setup/done", "/setup/restored", "/setup/kit")


def _add_headers(response: web.StreamResponse, tls: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if tls:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


def _wants_page(request: web.Request, status: int) -> bool:
    """A person's browser gets the box's own page; scripts (JSON polling) the bare error."""
    if SESSION_KEY not in request or TRANSLATOR_KEY not in request:
        return False
    return status == 404 or "text/html" in request.headers.get("Accept", "")


def error_page(request: web.Request, status: int) -> web.Response:
    kind = ERROR_KINDS.get(status, "generic")
    return render(request, "error.html", {"error": kind, "status": status}, status=status)


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers on every response, and the box's own pages for every 4xx/5xx it produces."""
    tls = state_of(request).secure_cookies
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and _wants_page(request, exc.status):
            response = error_page(request, exc.status)
            for name in _KEPT_HEADERS:
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        else:
            _add_headers(exc, tls)
            raise
    except Forbidden:
        response = render(request, "error.html", {"error": "forbidden"}, status=403)
    except CsrfRejected:
        response = render(request, "error.html", {"error": "csrf"}, status=403)
    except BoxLocked:
        raise web.HTTPSeeOther("/unlock") from None
    except Exception:
        if not _wants_page(request, 500):
            raise
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = error_page(request, 500)
    _add_headers(response, tls)
    return response


def _set_cookie(response: web.StreamResponse, session_id: str, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        httponly=True,
        secure=secure,
        samesite="Strict",
        path="/",
    )


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session (new if none) and the translator; send the cookie when it changed."""
    if request.path.startswith("/static/"):
        return await handler(request)  # assets need no session
    state = state_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    session, expired = state.sessions.get(cookie)
    if session is None:
        session = state.sessions.new()
        if expired:
            session.flash("info", "Your session expired. Please log in again.")
    request[SESSION_KEY] = session
    language = i18n.choose_language(
        request.cookies.get(i18n.LANG_COOKIE), request.headers.get("Accept-Language")
    )
    request[TRANSLATOR_KEY] = i18n.translator(language)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _maybe_set_cookie(request, exc, cookie, state.secure_cookies)
        raise
    _maybe_set_cookie(request, response, cookie, state.secure_cookies)
    return response


def _maybe_set_cookie(
    request: web.Request, response: web.StreamResponse, cookie: str | None, secure: bool
) -> None:
    if response.prepared:  # a streamed download: headers already sent
        return
    current = session_of(request)
    if current.id != cookie:
        _set_cookie(response, current.id, secure)


@web.middleware
async def phase_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No identity: only the wizard. Locked or updating: only the unlock page. Ready: neither."""
    if len(request.raw_path) > MAX_URL_BYTES:
        raise web.HTTPRequestURITooLong()
    path = request.path
    if path.startswith(_ALWAYS):
        return await handler(request)
    phase = state_of(request).box.phase
    if phase is BoxPhase.UNINITIALISED:
        if not path.startswith("/setup"):
            raise web.HTTPSeeOther("/setup")
    elif phase is BoxPhase.LOCKED or phase is BoxPhase.UPDATING:
        if path != "/unlock":
            raise web.HTTPSeeOther("/unlock")
    elif path == "/unlock" or (
        path.startswith("/setup") and not path.startswith(_WIZARD_AFTER_INIT)
    ):
        raise web.HTTPSeeOther("/")
    return await handler(request)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS:
        await check_request(request, session_of(request).csrf_token)
    return await handler(request)


MIDDLEWARES = (
    security_middleware,
    session_middleware,
    phase_middleware,
    practice_zone_middleware,  # every page's times in the practice's zone
    csrf_middleware,
)
