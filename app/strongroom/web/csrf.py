"""CSRF: every state-changing request carries the session's token.

The token is per session (rotated with the session at login) and sent back in
a hidden form field `csrf_token` (or the X-CSRF-Token header for the few
fetch() calls). Comparison is constant-time. SameSite=Strict cookies already
stop most cross-site posts; the token is the second, independent lock.
"""

from __future__ import annotations

import hmac

from aiohttp import web

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRejected(Exception):
    """The request's CSRF token is missing or wrong: nothing was done."""


def tokens_match(expected: str, given: str | None) -> bool:
    if not given:
        return False
    # aiohttp hands over a header's bytes that are not UTF-8 as lone surrogates: a
    # token that cannot be encoded is a refusal, not a 500.
    try:
        given_bytes = given.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given_bytes)


async def check_request(request: web.Request, expected: str) -> None:
    """Raise CsrfRejected unless an unsafe request carries the expected token."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(expected, given):
        raise CsrfRejected("missing or wrong CSRF token")
