"""Backups page: where backups go, which sets are there, and "Back up now".

The target is box.toml's `backup_target` when it names one (the appliance's
nightly timer uses the same), else a directory the admin chose here (kept in
the archive's settings). A backup runs as a background job with a progress
bar (`/jobs/<id>`, leave and come back) and ends with an audit event:
`backup.done` (set, tree size, blob counts) or `backup.failed` (why), which the
dashboard's "last backup" and this page read.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from nacl.signing import VerifyKey

from strongroom.archive.audit_reads import last_audit_event
from strongroom.archive.db import Connection
from strongroom.box import Box
from strongroom.identity import BoxKeys
from strongroom.office import backup
from strongroom.office.backup_format import MANIFEST_FILE, SET_PREFIX, open_manifest
from strongroom.office.backup_format import Progress as OfficeProgress
from strongroom.office.errors import BackupCorrupted, BackupError
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import Job, JobResult, JobState, Progress
from strongroom.web.mounts import parse_directory
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.settings import BACKUP_TARGET, get_setting, set_setting_op
from strongroom.web.state import audit, read, state_of, submit

routes = web.RouteTableDef()

DONE, FAILED = "backup.done", "backup.failed"
# `backup` is the office's own event (CLI and nightly timer runs write only that one).
RESULT_ACTIONS = (DONE, FAILED, "backup")

# Where each stage of backup.run sits on the job's progress bar.
_STAGES = {"snapshot": (0.0, 0.1), "database": (0.1, 0.5), "blobs": (0.5, 0.9)}
_CLEANUP = (0.9, 1.0)


def backup_progress(progress: Progress) -> OfficeProgress:
    """Map backup.run's (stage, done, total) onto one 0..1 bar."""

    def report(stage: str, done: int, total: int) -> None:
        start, end = _STAGES.get(stage, _CLEANUP)
        share = done / total if total > 0 else 1.0
        progress(start + (end - start) * share, stage)

    return report


@dataclass(frozen=True)
class BackupSet:
    name: str
    created_ms: int | None
    tree_size: int | None
    blobs: int | None
    readable: bool


@dataclass(frozen=True)
class LastBackup:
    at_ms: int
    ok: bool
    details: dict[str, Any]


def _set_time_ms(name: str) -> int | None:
    """Set names carry their UTC time (set-20260101T101500123456Z)."""
    try:
        moment = datetime.strptime(name[len(SET_PREFIX) :], "%Y%m%dT%H%M%S%fZ")
    except ValueError:
        return None
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def read_sets(target: Path, backup_key: bytes, verify_key: VerifyKey) -> list[BackupSet]:
    """The complete sets on the target, newest first; blocking (call off the loop)."""
    found: list[BackupSet] = []
    for set_dir in reversed(backup.list_sets(target)):
        try:
            manifest = open_manifest((set_dir / MANIFEST_FILE).read_bytes(), backup_key, verify_key)
        except (BackupCorrupted, OSError, ValueError):
            found.append(BackupSet(set_dir.name, _set_time_ms(set_dir.name), None, None, False))
            continue
        head = manifest.get("tree_head")
        blobs = manifest.get("blobs")
        created = manifest.get("created_at_ms")
        found.append(
            BackupSet(
                name=set_dir.name,
                created_ms=created if isinstance(created, int) else _set_time_ms(set_dir.name),
                tree_size=int(head["tree_size"]) if isinstance(head, dict) else 0,
                blobs=len(blobs) if isinstance(blobs, list) else None,
                readable=True,
            )
        )
    return found


def last_backup(conn: Connection) -> LastBackup | None:
    event = last_audit_event(conn, RESULT_ACTIONS)
    if event is None:
        return None
    try:
        details = json.loads(event.details)
    except ValueError:
        details = {}
    return LastBackup(
        event.at, event.action != FAILED, details if isinstance(details, dict) else {}
    )


async def backup_target(request: web.Request) -> tuple[Path | None, bool]:
    """The target in force and whether box.toml fixes it (then the page cannot change it)."""
    configured = state_of(request).box.config.backup_target
    if configured is not None:
        return configured, True
    chosen = await read(request, lambda conn: get_setting(conn, BACKUP_TARGET))
    return (Path(chosen) if chosen else None), False


def _running_backup(jobs: list[Job]) -> Job | None:
    return next((j for j in jobs if j.kind == "backup" and j.state is JobState.RUNNING), None)


@routes.get("/backups")
@require_role(ADMIN)
async def backups_page(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    box = state.box
    target, fixed = await backup_target(request)
    problem: str | None = None
    sets: list[BackupSet] = []
    if target is not None:
        checked = await asyncio.to_thread(parse_directory, str(target))
        if isinstance(checked, str):
            problem = checked
        else:
            keys = _keys(box)
            sets = await asyncio.to_thread(
                read_sets, checked, keys.backup_key, keys.signing_key.verify_key
            )
    jobs = [j for j in state.jobs.for_owner() if j.kind == "backup"]
    context = {
        "target": target,
        "target_fixed": fixed,
        "target_problem": problem,
        "sets": sets,
        "last": await read(request, last_backup),
        "jobs": jobs[:10],
        "running": _running_backup(jobs),
    }
    await practice_zone(request)  # the page shows times in it
    return render(request, "backups.html", context)


def _keys(box: Box) -> BoxKeys:
    box.require_archive()
    assert box.keys is not None  # the archive is open, so the keys are there
    return box.keys


@routes.post("/backups/target")
@require_role(ADMIN)
async def choose_target(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if state_of(request).box.config.backup_target is not None:
        session.flash("error", "The backup directory is set in box.toml.")
        raise web.HTTPSeeOther("/backups")
    form = await request.post()
    checked = await asyncio.to_thread(parse_directory, text_field(form, "target", 2000))
    if isinstance(checked, str):
        session.flash("error", checked)
        raise web.HTTPSeeOther("/backups")
    await submit(request, set_setting_op(BACKUP_TARGET, str(checked)))
    await audit(request, "settings.change", BACKUP_TARGET, {"value": str(checked)})
    session.flash("success", "Backup directory saved.")
    raise web.HTTPSeeOther("/backups")


@routes.post("/backups")
@require_role(ADMIN)
async def start_backup(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    session = session_of(request)
    box = state.box
    target, _fixed = await backup_target(request)
    if target is None:
        session.flash("error", "Choose a backup directory first.")
        raise web.HTTPSeeOther("/backups")
    checked = await asyncio.to_thread(parse_directory, str(target))
    if isinstance(checked, str):
        session.flash("error", checked)
        raise web.HTTPSeeOther("/backups")
    running = _running_backup(state.jobs.for_owner())
    if running is not None:  # two runs would race for the same set name and pool
        session.flash("info", "A backup is already running.")
        raise web.HTTPSeeOther(f"/jobs/{running.id}")
    archive = box.require_archive()
    backup_key = _keys(box).backup_key
    actor = session.username or ""

    async def body(progress: Progress) -> JobResult:
        report = backup_progress(progress)
        try:
            result = await asyncio.to_thread(
                lambda: backup.run(archive, checked, backup_key, report, actor=actor)
            )
        except (BackupError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            await box.audit(actor, FAILED, str(checked), {"reason": reason})
            raise
        details = {
            "set": result.set_dir.name,
            "tree_size": result.tree_size,
            "blobs": result.blobs,
            "blobs_copied": result.blobs_copied,
            "database_bytes": result.database_bytes,
            "removed_sets": list(result.removed_sets),
        }
        await box.audit(actor, DONE, str(checked), details)
        return JobResult(summary=N_("The backup set is written."))

    job = state.jobs.start("backup", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")
