"""The audit trail: every login, search, view, export, pairing, revocation and
setting change, filterable by action, actor and date. Each row is a leaf of
the box's Merkle log, so the trail is as tamper-evident as the records."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.archive.queries import AuditRow, audit_events
from strongroom.web.auth import ADMIN, AUDITOR, require_role
from strongroom.web.forms import day_ms
from strongroom.web.render import render
from strongroom.web.state import read

routes = web.RouteTableDef()
MAX_ROWS = 500


def _actions(conn: Connection) -> list[str]:
    return [str(a) for (a,) in conn.execute("SELECT DISTINCT action FROM audit_events ORDER BY 1")]


@routes.get("/audit")
@require_role(ADMIN, AUDITOR)
async def audit_page(request: web.Request) -> web.StreamResponse:
    def get(name: str) -> str:
        return request.query.get(name, "").strip()[:200]

    action, actor, since, until = get("action"), get("actor"), get("since"), get("until")

    def load(conn: Connection) -> tuple[list[AuditRow], list[str]]:
        rows = audit_events(
            conn,
            action=action or None,
            actor=actor or None,
            since_ms=day_ms(since),
            until_ms=day_ms(until, next_day=True),
            limit=MAX_ROWS,
        )
        return rows, _actions(conn)

    rows, actions = await read(request, load)
    context: dict[str, Any] = {
        "rows": rows,
        "actions": actions,
        "filters": {"action": action, "actor": actor, "since": since, "until": until},
        "max_rows": MAX_ROWS,
    }
    return render(request, "audit.html", context)
