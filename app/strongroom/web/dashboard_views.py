"""The admin's dashboard: is the box healthy, and is a pairing window open?"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from strongroom.appliance.health import Health, disk_forecast_days, read_health
from strongroom.appliance.nightjobs import JobOutcome, last_outcomes
from strongroom.archive.audit_reads import DASHBOARD_COUNTS, counts, last_audit_event
from strongroom.archive.db import Connection
from strongroom.archive.message_count import MessageCount
from strongroom.archive.scrub import pending_since_ms
from strongroom.box import Box
from strongroom.web.auth import ADMIN, require_role
from strongroom.web.device_views import online_device_ids, pairing_view
from strongroom.web.onboarding import all_done, checklist
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.restore_notice import restore_notice
from strongroom.web.settings import PRACTICE_NAME, get_setting
from strongroom.web.state import read, state_of

routes = web.RouteTableDef()

# Audit actions that mark a finished backup / integrity check (ours and the office's).
BACKUP_ACTIONS = ("backup.done", "backup.create", "backup")
VERIFY_ACTIONS = ("integrity.verify", "verify", "integrity.ok", "integrity.failed")


@dataclass(frozen=True)
class ArchiveFacts:
    counts: dict[str, int]
    practice_name: str | None
    last_backup_ms: int | None
    last_verify_ms: int | None
    last_verify_ok: bool | None
    # The last run of each night job (backup, retention, verify), from the audit trail.
    night_jobs: dict[str, JobOutcome]


def _ok_flag(details: str) -> bool | None:
    try:
        value = json.loads(details).get("ok")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def archive_facts(
    conn: Connection, messages: MessageCount | None = None, file: tuple[int, int] = (0, 0)
) -> ArchiveFacts:
    """What the dashboard shows of the archive (`messages`: the box's running count)."""
    backup = last_audit_event(conn, BACKUP_ACTIONS)
    verify = last_audit_event(conn, VERIFY_ACTIONS)
    shown = counts(conn, DASHBOARD_COUNTS)
    if messages is not None:
        shown["messages"] = messages(conn, file)
    return ArchiveFacts(
        counts=shown,
        practice_name=get_setting(conn, PRACTICE_NAME),
        last_backup_ms=backup.at if backup else None,
        last_verify_ms=verify.at if verify else None,
        last_verify_ok=_ok_flag(verify.details) if verify else None,
        night_jobs=last_outcomes(conn),
    )


async def box_health(box: Box) -> Health:
    """The box's health reading (disk, temperature, memory), read off the event loop:
    it stats the disk and reads the board's files."""
    return await asyncio.to_thread(read_health, box.config.data_dir)


def _file_of(box: Box) -> tuple[int, int]:
    """The archive file's identity: a restore puts another file in its place."""
    try:
        found = os.stat(box.config.archive_path)
    except OSError:
        return (0, 0)
    return (found.st_dev, found.st_ino)


@routes.get("/dashboard")
@require_role(ADMIN)
async def dashboard(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    health = await box_health(state.box)
    state.sample_disk(health.disk.used)
    facts = await read(
        request, lambda conn: archive_facts(conn, state.message_count, _file_of(state.box))
    )
    in_config = state.box.config.backup_target is not None
    steps = await read(request, lambda conn: checklist(conn, backup_in_config=in_config))
    online = online_device_ids(state.box)
    context: dict[str, Any] = {
        "health": health,
        "forecast_days": disk_forecast_days(state.disk_samples, health.disk.total),
        "facts": facts,
        "devices_online": None if online is None else len(online),
        "pairing": pairing_view(state.box),
        "faults": dict(state.box.faults),
        "checklist": None if all_done(steps) else steps,
        "restore_notice": await read(request, restore_notice),
        "scrub_pending": pending_since_ms(state.box.config.archive_path),
    }
    await practice_zone(request)  # the page shows times in it
    return render(request, "dashboard.html", context)
