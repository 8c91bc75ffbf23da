"""The audit trail by name for `service.run_op`: `strongroom audit`, running box or not;
and the lost heads' acknowledgement, itself an audit event (`strongroom losses`).

The same filters as the web page (/audit): action, who, and typed days read in the
practice's time zone (`time_zone` overrides it), so "from 5 Dec" is the practice's
5 Dec whatever the box's own clock zone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strongroom.archive.audit_reads import audit_events
from strongroom.archive.db import Connection
from strongroom.archive.losses import acknowledge_loss, kept_head_json, losses, parse_head
from strongroom.office.matter_ops import day_ms
from strongroom.office.practice_days import zone_of
from strongroom.office.service import Ctx, _text

MAX_ROWS = 1000  # audit_events' own cap


def audit_list(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    since, until = day_ms(ctx, params, "from"), day_ms(ctx, params, "to", next_day=True)
    limit = int(params.get("limit") or 200)

    def q(conn: Connection) -> dict[str, Any]:
        rows = audit_events(
            conn,
            action=_text(params, "action") or None,
            actor=_text(params, "actor") or None,
            since_ms=since,
            until_ms=until,
            limit=min(max(limit, 1), MAX_ROWS),
        )
        return {
            "time_zone": zone_of(conn, _text(params, "time_zone") or None),
            "events": [
                {
                    "at": r.at,
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "details": r.details,
                    "log_index": r.log_index,
                }
                for r in rows
            ],
        }

    return ctx.read(q)  # type: ignore[no-any-return]


def loss_list(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    """The lost-head files and whether each was acknowledged (archive/losses.py), and
    the kept head's failure if the box cannot write it: `strongroom losses list`."""
    archive = ctx.archive
    box_key = bytes(archive.signing_key.verify_key)
    found = ctx.read(lambda conn: losses(archive.path.parent, conn, box_key))
    return {"losses": [x.to_json() for x in found], "kept_head": kept_head_json(archive)}


def loss_acknowledge(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """An administrator's acknowledgement of one loss, in the signed audit trail; with
    `head` (SIZE:ROOTHEX, as listed), refused if the file holds another head now."""
    archive = ctx.archive
    head = _text(params, "head")
    op = acknowledge_loss(
        archive.path.parent,
        bytes(archive.signing_key.verify_key),
        _text(params, "file"),
        _text(params, "actor"),
        _text(params, "note"),
        expect=parse_head(head) if head else None,
    )
    ack = archive.write(op)
    return {"acknowledged": {"file": ack.file, "by": ack.actor, "log_index": ack.log_index}}


AUDIT_OPS: dict[str, Callable[[Ctx, dict[str, Any]], dict[str, Any]]] = {
    "audit.list": audit_list,
    "loss.list": loss_list,
    "loss.acknowledge": loss_acknowledge,
}
