"""After a restore from a backup: which phones must pair again (protocol.md §6.3).

A backup's log ends at its signed head. Phones that talked to the old box after
that head saw a longer log, and they refuse the restored box (rightly: what they
pushed since is not in it) until they are paired again. The box cannot know in
advance which phones did; it learns it when such a phone connects and names
the size it saw (`known`), which the peer service audits as `device.log_ahead`.
The dashboard shows the backup's head and those phones until an admin dismisses
the notice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.archive.store import Txn
from strongroom.office.restore import RESTORED_FROM
from strongroom.peer.server import LOG_AHEAD_ACTION
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.state import audit, read, submit

routes = web.RouteTableDef()


@dataclass(frozen=True)
class AheadPhone:
    device_id: int
    name: str
    owner: str
    phone_log_size: int
    at_ms: int  # when the phone connected and said so


@dataclass(frozen=True)
class RestoreNotice:
    set_name: str
    tree_size: int
    head_at_ms: int | None
    restored_at_ms: int
    ahead: list[AheadPhone]


def restore_notice(conn: Connection) -> RestoreNotice | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (RESTORED_FROM,)).fetchone()
    if row is None:
        return None
    try:
        facts = json.loads(row[0])
        restored_at = int(facts["restored_at_ms"])
    except (ValueError, KeyError, TypeError):
        return None
    ahead: dict[int, AheadPhone] = {}
    # The audit index (action, at) makes this one range read, whatever the trail's size.
    for at, details in conn.execute(
        "SELECT at, details FROM audit_events WHERE action = ? AND at >= ? ORDER BY at",
        (LOG_AHEAD_ACTION, restored_at),
    ):
        try:
            said = json.loads(details)
            device_id, size = int(said["device"]), int(said["phone_log_size"])
        except (ValueError, KeyError, TypeError):
            continue
        if device_id not in ahead:
            ahead[device_id] = AheadPhone(device_id, "", "", size, int(at))
    phones: list[AheadPhone] = []
    for device_id, phone in ahead.items():
        device = conn.execute(
            "SELECT name, owner FROM devices WHERE id = ? AND revoked_at IS NULL", (device_id,)
        ).fetchone()
        if device is not None:  # a revoked phone needs no new pairing of that device
            phones.append(
                AheadPhone(
                    device_id, str(device[0]), str(device[1]), phone.phone_log_size, phone.at_ms
                )
            )
    head_at = facts.get("head_at_ms")
    return RestoreNotice(
        set_name=str(facts.get("set", "")),
        tree_size=int(facts.get("tree_size") or 0),
        head_at_ms=int(head_at) if isinstance(head_at, int) else None,
        restored_at_ms=restored_at,
        ahead=phones,
    )


def _forget(txn: Txn) -> None:
    txn.conn.execute("DELETE FROM settings WHERE key = ?", (RESTORED_FROM,))


@routes.post("/restore-notice/dismiss")
@require_role(ADMIN)
async def dismiss(request: web.Request) -> web.StreamResponse:
    if await read(request, restore_notice) is not None:
        await submit(request, _forget)
        await audit(request, "settings.change", RESTORED_FROM, {"value": ""})
        session_of(request).flash("success", "Restore notice dismissed.")
    raise web.HTTPSeeOther("/dashboard")
