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

# Paths served whatever the phase (assets, the language switch).
_ALWAYS = ("/static/", "/lang")
# Wizard pages still shown once the box is READY (the last steps, a restore's outcome).
_WIZARD_AFTER_INIT = ("/setup/practice", "/setup/done", "/setup/restored", "/setup/kit")


def _add_headers(response: web.StreamResponse, tls: bool) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if tls:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers on every response, and our own pages for 403/404/500."""
    tls = state_of(request).secure_cookies
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404 and SESSION_KEY in request:
            response = render(request, "error.html", {"error": "not_found"}, status=404)
        else:
            _add_headers(exc, tls)
            raise
    except Forbidden:
        response = render(request, "error.html", {"error": "forbidden"}, status=403)
    except CsrfRejected:
        response = render(request, "error.html", {"error": "csrf"}, status=403)
    except BoxLocked:
        raise web.HTTPSeeOther("/unlock") from None
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
    """No identity: only the wizard. Locked: only the unlock page. Ready: neither."""
    path = request.path
    if path.startswith(_ALWAYS):
        return await handler(request)
    phase = state_of(request).box.phase
    if phase is BoxPhase.UNINITIALISED:
        if not path.startswith("/setup"):
            raise web.HTTPSeeOther("/setup")
    elif phase is BoxPhase.LOCKED:
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


MIDDLEWARES = (security_middleware, session_middleware, phase_middleware, csrf_middleware)
