"""The records office's search-as-you-type pickers (holds and policy assignments).

GET /office/search?kind=conversation|person|matter&q=TEXT answers at most
`pickers.LIMIT` matches as JSON ({"results": [{"value", "label", "detail"}]}), found by
index look-ups (office/pickers.py), so the /office page no longer sends every
conversation and person of the archive to the browser. Logged-in archivists and
admins only, and, although it reads only, the session's CSRF token in the
X-CSRF-Token header as the page's own fetch() sends it: another site cannot make a
logged-in browser ask it anything.

Without JavaScript the form's text field is sent as typed, and `subject_from_form`
resolves it (a number, OWNER/REF, a matter's reference, or the first letters of one
conversation or matter); with JavaScript the picked match's number travels in a
hidden `<field>_id` beside it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.office import pickers
from strongroom.web.auth import ADMIN, ARCHIVIST, require_role, session_of
from strongroom.web.csrf import CSRF_HEADER, tokens_match
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.state import read

routes = web.RouteTableDef()

# What a typed field may hold before it is refused (the query itself is cut to
# pickers.MAX_QUERY_CHARS once cleaned).
MAX_TYPED_CHARS = 200


@routes.get("/office/search")
@require_role(ADMIN, ARCHIVIST)
async def search(request: web.Request) -> web.StreamResponse:
    if not tokens_match(session_of(request).csrf_token, request.headers.get(CSRF_HEADER)):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    kind = request.query.get("kind", "")
    text = request.query.get("q", "")
    if kind not in pickers.KINDS:
        raise web.HTTPBadRequest(text=f"kind is one of {', '.join(pickers.KINDS)}")
    if len(text) > MAX_TYPED_CHARS:
        raise web.HTTPBadRequest(text=f"at most {MAX_TYPED_CHARS} characters")
    found = await read(request, lambda conn: pickers.find(conn, kind, text))
    return web.json_response(
        {"results": [{"value": f.value, "label": f.label, "detail": f.detail} for f in found]},
        headers={"Cache-Control": "no-store"},
    )


def subject_from_form(conn: Connection, form: Any, field: str) -> int:
    """The conversation or matter (`field`) a form names: the picked number in
    `<field>_id`, else the typed text resolved; pickers.NoMatch when it names none or
    several."""
    picked = text_field(form, f"{field}_id", 20).strip()
    typed = text_field(form, field, MAX_TYPED_CHARS)
    if picked.isascii() and picked.isdigit():
        typed = picked
    if field == "conversation":
        return pickers.resolve_conversation(conn, typed)
    return pickers.resolve_matter(conn, typed)


def no_match_text(field: str, error: pickers.NoMatch, *, export: bool = False) -> str:
    """The flash (a msgid) for a typed conversation or matter that names none or several.

    `export`: the export form's, which ends on what did not happen (an export changes
    nothing anyway); the forms that change something (holds, policies) say nothing was."""
    if export:
        return _no_match_export_text(field, error)
    if field == "conversation":
        if error.several:
            return N_(
                "Several conversations match what was typed: type more of the name,"
                " or pick one in the list. Nothing was changed."
            )
        return N_(
            "No conversation matches what was typed: type the first letters of its owner"
            " or other party, OWNER/REF, or its number. Nothing was changed."
        )
    if error.several:
        return N_(
            "Several matters match what was typed: type more of the reference,"
            " or pick one in the list. Nothing was changed."
        )
    return N_(
        "No matter matches what was typed: type its reference or its number. Nothing was changed."
    )


def _no_match_export_text(field: str, error: pickers.NoMatch) -> str:
    if field == "conversation":
        if error.several:
            return N_(
                "Several conversations match what was typed: type more of the name,"
                " or pick one in the list. Nothing was exported."
            )
        return N_(
            "No conversation matches what was typed: type the first letters of its owner"
            " or other party, OWNER/REF, or its number. Nothing was exported."
        )
    if error.several:
        return N_(
            "Several matters match what was typed: type more of the reference,"
            " or pick one in the list. Nothing was exported."
        )
    return N_(
        "No matter matches what was typed: type its reference or its number. Nothing was exported."
    )
