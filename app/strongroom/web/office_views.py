"""Records office pages: exports, retention and holds, and the background jobs
(export, integrity check, backup) with their progress pages.

The records-office engine lives in `strongroom.office`; these pages offer what
it provides. Jobs run in the background: whoever started one can leave and
come back to /jobs/<id> (progress polled by static/app.js, or a meta refresh).
"""

from __future__ import annotations

import asyncio
import importlib
import secrets
from typing import Any

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.archive.queries import list_conversations
from strongroom.archive.verify import verify_open_archive
from strongroom.office import holds, policies
from strongroom.office.errors import OfficeError
from strongroom.web.auth import ADMIN, ARCHIVIST, require_role, session_of
from strongroom.web.forms import day_ms, int_or_none, text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import Job, JobResult, JobState, Progress
from strongroom.web.render import render
from strongroom.web.state import audit, read, state_of, submit

routes = web.RouteTableDef()


def _office(module: str) -> Any | None:
    """A records-office module if this box has it (the office grows in parallel)."""
    try:
        return importlib.import_module(f"strongroom.office.{module}")
    except ImportError:
        return None


def _office_ready(conn: Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'legal_holds'"
    ).fetchone()
    return int(row[0]) == 1


# -- jobs -------------------------------------------------------------------------------


def _job_for(request: web.Request) -> Job:
    job = state_of(request).jobs.get(request.match_info["job_id"])
    session = session_of(request)
    if job is None or (job.owner != session.username and session.role != ADMIN):
        raise web.HTTPNotFound()
    return job


@routes.get("/jobs/{job_id}")
@require_role(ADMIN, ARCHIVIST)
async def job_page(request: web.Request) -> web.StreamResponse:
    job = _job_for(request)
    return render(request, "job.html", {"job": job, "running": job.state is JobState.RUNNING})


@routes.get("/jobs/{job_id}/status")
@require_role(ADMIN, ARCHIVIST)
async def job_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(_job_for(request).as_json(), headers={"Cache-Control": "no-store"})


@routes.get("/jobs/{job_id}/download")
@require_role(ADMIN, ARCHIVIST)
async def job_download(request: web.Request) -> web.StreamResponse:
    job = _job_for(request)
    if job.result is None or job.result.file is None or not job.result.file.exists():
        raise web.HTTPNotFound()
    from strongroom.web.archive_views import content_disposition

    name = job.result.download_name or job.result.file.name
    await audit(request, "export.download", job.id, {"file": name})
    return web.FileResponse(
        job.result.file,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(name, "export.bin"),
            "Cache-Control": "no-store",
        },
    )


# -- integrity check ------------------------------------------------------------------------


@routes.post("/verify")
@require_role(ADMIN)
async def start_verify(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    box = state.box
    archive = box.require_archive()
    actor = session_of(request).username or ""

    async def body(progress: Progress) -> JobResult:
        def run() -> Any:
            return verify_open_archive(
                archive,
                progress=lambda stage, done, total: progress(done / total if total else 0.0, stage),
            )

        report = await asyncio.to_thread(run)
        details = {"ok": report.ok, "leaves": report.leaves, "problems": len(report.problems)}
        await box.audit(actor, "integrity.verify", "archive", details)
        summary = N_("The archive verifies.") if report.ok else N_("The archive does NOT verify.")
        return JobResult(summary=summary, problems=tuple(report.problems[:50]))

    job = state.jobs.start("verify", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


# -- exports -------------------------------------------------------------------------------


@routes.get("/exports")
@require_role(ADMIN, ARCHIVIST)
async def exports_page(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    conversations = await read(request, list_conversations)
    owners = sorted({c.owner for c in conversations} | {c.peer for c in conversations if c.peer})
    context = {
        "available": _office("export") is not None,
        "conversations": conversations,
        "people": owners,
        "jobs": state.jobs.for_owner(session_of(request).username),
    }
    return render(request, "exports.html", context)


@routes.post("/exports")
@require_role(ADMIN, ARCHIVIST)
async def start_export(request: web.Request) -> web.StreamResponse:
    export = _office("export")
    if export is None:
        raise web.HTTPNotFound()
    state = state_of(request)
    form = await request.post()
    kind = text_field(form, "kind", 20)
    actor = session_of(request).username or ""
    try:
        if kind == "person":
            scope = export.ExportScope("person", person=text_field(form, "person", 200))
        else:
            conversation = int_or_none(text_field(form, "conversation", 20))
            scope = export.ExportScope("conversation", conversation_id=conversation)
        export_request = export.ExportRequest(
            scope,
            actor=actor,
            recipient=text_field(form, "recipient", 200),
            reason=text_field(form, "reason", 500),
        )
    except OfficeError:
        session_of(request).flash("error", "Say what to export, for whom and why.")
        raise web.HTTPSeeOther("/exports") from None
    archive = state.box.require_archive()
    state.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def body(progress: Progress) -> JobResult:
        progress(0.05, "export")
        out_path = state.work_dir / f"export-{secrets.token_hex(6)}.zip"
        # export_bundle logs the export itself (an audit event naming the manifest hash).
        result = await asyncio.to_thread(export.export_bundle, archive, export_request, out_path)
        name = f"strongroom-export-{scope.describe().replace(':', '-')}.zip"
        return JobResult(summary=N_("The export is ready."), file=result.path, download_name=name)

    job = state.jobs.start("export", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


# -- retention and holds ------------------------------------------------------------------------


@routes.get("/office")
@require_role(ADMIN, ARCHIVIST)
async def office_page(request: web.Request) -> web.StreamResponse:
    def load(conn: Connection) -> dict[str, Any]:
        ready = _office_ready(conn)
        return {
            "ready": ready,
            "holds": holds.list_holds(conn) if ready else [],
            "policies": policies.list_policies(conn) if ready else [],
            "assignments": policies.list_assignments(conn) if ready else [],
            "conversations": list_conversations(conn),
        }

    return render(request, "office.html", await read(request, load))


@routes.post("/office/holds")
@require_role(ADMIN, ARCHIVIST)
async def place_hold(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    scope = text_field(form, "scope", 20)
    dated = scope == "date_range"
    try:
        spec = holds.HoldSpec(
            scope=scope,
            reason=text_field(form, "reason", 500),
            conversation_id=int_or_none(text_field(form, "conversation", 20))
            if scope == "conversation"
            else None,
            person=(text_field(form, "person", 200) or None) if scope == "person" else None,
            from_ms=day_ms(text_field(form, "since", 20)) if dated else None,
            to_ms=day_ms(text_field(form, "until", 20), next_day=True) if dated else None,
        )
        await submit(request, holds.place_hold(spec, session_of(request).username or ""))
    except OfficeError:
        session_of(request).flash("error", "The hold is incomplete: give a subject and a reason.")
        raise web.HTTPSeeOther("/office") from None
    session_of(request).flash("success", "Legal hold placed.")
    raise web.HTTPSeeOther("/office")


@routes.post("/office/holds/{hold_id:[0-9]{1,18}}/lift")
@require_role(ADMIN, ARCHIVIST)
async def lift_hold(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    reason = text_field(form, "reason", 500)
    hold_id = int(request.match_info["hold_id"])
    try:
        await submit(request, holds.lift_hold(hold_id, session_of(request).username or "", reason))
    except OfficeError:
        session_of(request).flash("error", "Lifting a hold needs a reason.")
        raise web.HTTPSeeOther("/office") from None
    session_of(request).flash("success", "Legal hold lifted.")
    raise web.HTTPSeeOther("/office")
