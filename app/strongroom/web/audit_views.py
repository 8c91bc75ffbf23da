"""The audit trail: every login, search, view, export, pairing, revocation and
setting change, filterable by action, actor and date. Each row is a leaf of
the box's Merkle log, so the trail is as tamper-evident as the records."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.archive.audit_reads import AuditRow, audit_events
from strongroom.archive.db import Connection
from strongroom.office.practice_days import zone_of
from strongroom.web.auth import ADMIN, AUDITOR, require_role
from strongroom.web.forms import day_ms
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.state import read

routes = web.RouteTableDef()
MAX_ROWS = 500


def _names(conn: Connection) -> dict[str, str]:
    """Readable names for the ids audit targets carry (devices, conversations, policies)."""
    names: dict[str, str] = {}
    for device_id, name in conn.execute("SELECT id, name FROM devices"):
        names[f"device:{device_id}"] = str(name)
    for conv_id, peer, ref in conn.execute("SELECT id, peer, ref FROM conversations"):
        names[f"conversation:{conv_id}"] = str(peer or ref)
    try:
        for policy_id, name in conn.execute("SELECT id, name FROM retention_policies"):
            names[f"policy:{policy_id}"] = str(name)
    except Exception:  # noqa: S110 - the records office's table may be absent
        pass
    return names


def target_name(names: dict[str, str], action: str, target: str) -> str:
    """'3' for a device event, 'conversation:2', 'policy:1': the name, else as stored."""
    if action.startswith(("device.", "pairing.")) and target.isdigit():
        return names.get(f"device:{target}", target)
    return names.get(target, target)


def _actions(conn: Connection) -> list[str]:
    return [str(a) for (a,) in conn.execute("SELECT DISTINCT action FROM audit_events ORDER BY 1")]


@routes.get("/audit")
@require_role(ADMIN, AUDITOR)
async def audit_page(request: web.Request) -> web.StreamResponse:
    def get(name: str) -> str:
        return request.query.get(name, "").strip()[:200]

    action, actor, since, until = get("action"), get("actor"), get("since"), get("until")

    def load(conn: Connection) -> tuple[list[AuditRow], list[str], dict[str, str], str]:
        zone = zone_of(conn)  # "from 5 Dec" is the practice's 5 Dec
        rows = audit_events(
            conn,
            action=action or None,
            actor=actor or None,
            since_ms=day_ms(since, zone),
            until_ms=day_ms(until, zone, next_day=True),
            limit=MAX_ROWS,
        )
        return rows, _actions(conn), _names(conn), zone

    rows, actions, names, zone = await read(request, load)
    context: dict[str, Any] = {
        "rows": rows,
        "actions": actions,
        "filters": {"action": action, "actor": actor, "since": since, "until": until},
        "max_rows": MAX_ROWS,
        "time_zone": zone,
        "target_name": lambda row: target_name(names, row.action, row.target),
    }
    await practice_zone(request)  # the page shows times in it
    return render(request, "audit.html", context)
