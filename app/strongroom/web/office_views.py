"""Records office pages: exports, retention and holds, and the background jobs
(export, integrity check, backup) with their progress pages.

The records-office engine lives in `strongroom.office`; these pages offer what
it provides. Jobs run in the background: whoever started one can leave and
come back to /jobs/<id> (progress polled by static/app.js, or a meta refresh).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from babel.numbers import format_decimal

from strongroom.archive.db import Connection
from strongroom.archive.verify import VerifyReport
from strongroom.archive.verify_runs import Mode, Verification, run_verification
from strongroom.office import holds, pickers, policies
from strongroom.office.errors import OfficeError
from strongroom.office.export_scope import count_records
from strongroom.office.pickers import NoMatch, conversation_names, matter_label
from strongroom.office.practice_days import hold_bound, last_ms_of_day, zone_of
from strongroom.web import exports_web
from strongroom.web.auth import ADMIN, ARCHIVIST, AUDITOR, require_role, session_of
from strongroom.web.csrf import CSRF_HEADER, tokens_match
from strongroom.web.forms import day_ms, int_or_none, text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import Job, JobResult, JobState, Progress
from strongroom.web.picker_views import no_match_text, subject_from_form
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render, translator_of
from strongroom.web.state import audit, read, state_of, submit

routes = web.RouteTableDef()


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
    await practice_zone(request)  # the page shows times in it
    return render(request, "job.html", {"job": job, "running": job.state is JobState.RUNNING})


@routes.get("/jobs/{job_id}/status")
@require_role(ADMIN, ARCHIVIST)
async def job_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(_job_for(request).as_json(), headers={"Cache-Control": "no-store"})


@routes.get("/jobs/{job_id}/download")
@require_role(ADMIN, ARCHIVIST)
async def job_download(request: web.Request) -> web.StreamResponse:
    job = _job_for(request)
    result = job.result
    if result is None or result.file is None or not result.file.exists():
        raise web.HTTPNotFound()
    from strongroom.web.archive_views import content_disposition

    name = result.download_name or result.file.name
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": content_disposition(name, "export.bin"),
        "Cache-Control": "no-store",
    }
    if result.file_key is None:
        await audit(request, "export.download", job.id, {"file": name})
        return web.FileResponse(result.file, headers=headers)
    return await exports_web.download_spool(request, job, name, headers)


# -- integrity check ------------------------------------------------------------------------


@routes.post("/verify")
@require_role(ADMIN)
async def start_verify(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    box = state.box
    archive = box.require_archive()
    actor = session_of(request).username or ""
    form = await request.post()
    mode: Mode = "incremental" if form.get("mode") == "incremental" else "full"

    async def body(progress: Progress) -> JobResult:
        def run() -> tuple[VerifyReport, Verification]:
            # Kept in `verifications` like the timer's runs: the Integrity page shows it.
            return run_verification(
                archive,
                mode,
                box.clock,
                progress=lambda stage, done, total: progress(done / total if total else 0.0, stage),
            )

        report, kept = await asyncio.to_thread(run)
        details = {
            "ok": report.ok,
            "leaves": report.leaves,
            "problems": len(report.problems),
            "kind": kept.kind,
        }
        await box.audit(actor, "integrity.verify", "archive", details)
        summary = N_("The archive verifies.") if report.ok else N_("The archive does NOT verify.")
        return JobResult(summary=summary, problems=tuple(report.problems[:50]))

    job = state.jobs.start("verify", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


# -- exports -------------------------------------------------------------------------------


@routes.get("/exports")
@require_role(ADMIN, ARCHIVIST)
async def exports_page(request: web.Request) -> web.StreamResponse:
    # The form's pickers search (picker_views): the page reads no list of the archive's
    # conversations, people or matters, only the matter a link names, by its key.
    state = state_of(request)
    # /exports?matter=<id>: the link from the matters page, that matter chosen.
    chosen = pickers.number(request.query.get("matter", ""))
    matter = await read(request, lambda conn: conn.execute(CHOSEN_MATTER, (chosen,)).fetchone())
    context = {
        "chosen_matter": None if matter is None else (str(matter[0]), matter_label(*matter[1:])),
        "jobs": state.jobs.for_owner(session_of(request).username),
        "time_zone": await practice_zone(request),  # the days typed are read in it
    }
    return render(request, "exports.html", context)


CHOSEN_MATTER = "SELECT id, ref, client FROM matters WHERE id = ?"


@routes.post("/exports")
@require_role(ADMIN, ARCHIVIST)
async def start_export(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    zone_name = await read(request, zone_of)
    actor = session_of(request).username or ""
    try:
        export_request = await read(
            request, lambda conn: exports_web.request_from_form(conn, form, actor, zone_name)
        )
    except NoMatch as e:  # a typed conversation or matter that names none, or several
        field = "matter" if text_field(form, "kind", 20) == "matter" else "conversation"
        session_of(request).flash("error", no_match_text(field, e, export=True))
        raise web.HTTPSeeOther("/exports") from None
    except OfficeError:
        session_of(request).flash("error", "Say what to export, for whom and why.")
        raise web.HTTPSeeOther("/exports") from None
    except ValueError:  # a typed date that is no date: never export more than asked
        session_of(request).flash("error", "Dates are written YYYY-MM-DD. Nothing was exported.")
        raise web.HTTPSeeOther("/exports") from None
    # Refused here, as the page's count said, rather than as a job that fails.
    if await read(request, lambda conn: count_records(conn, export_request.scope)) == 0:
        session_of(request).flash("error", "No message matches this export. Nothing was exported.")
        raise web.HTTPSeeOther("/exports")
    job = exports_web.start_export_job(state_of(request), export_request)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


@routes.get("/exports/count")
@require_role(ADMIN, ARCHIVIST)
async def export_count(request: web.Request) -> web.StreamResponse:
    """What the form would export, counted for that scope only (the page's fetch(), with
    the session's CSRF token as /office/search asks it): {"count", "text"}, or
    {"text"} saying why nothing would be."""
    if not tokens_match(session_of(request).csrf_token, request.headers.get(CSRF_HEADER)):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")
    zone_name = await read(request, zone_of)
    translate = translator_of(request)

    def count(conn: Connection) -> dict[str, Any]:
        scope = exports_web.scope_from_form(conn, request.query, zone_name)
        n = count_records(conn, scope)
        text = translate.ngettext(
            "%(num)s message will be exported",
            "%(num)s messages will be exported",
            n,
            num=format_decimal(n, locale=translate.language),
        )
        return {"count": n, "text": text}

    try:
        answer = await read(request, count)
    except NoMatch as e:
        field = "matter" if request.query.get("kind") == "matter" else "conversation"
        answer = {"text": translate.gettext(no_match_text(field, e, export=True))}
    except OfficeError:
        answer = {"text": translate.gettext("Say what to export, for whom and why.")}
    except ValueError:
        answer = {"text": translate.gettext("Dates are written YYYY-MM-DD. Nothing was exported.")}
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


# -- retention and holds ------------------------------------------------------------------------


@routes.get("/office")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def office_page(request: web.Request) -> web.StreamResponse:
    from strongroom.office import review

    def load(conn: Connection) -> dict[str, Any]:
        hold_list = holds.list_holds(conn)
        all_policies = policies.list_policies(conn)
        assignments = policies.list_assignments(conn)
        zone = zone_of(conn)
        return {
            "time_zone": zone,
            # A date-range hold's days, as typed: the practice's, first and last included;
            # exact date-times for a bound that is not a whole practice day (an older hold).
            "hold_days": lambda h: (
                hold_bound(h.spec.from_ms, zone),
                hold_bound(h.spec.to_ms, zone, until=True),
            ),
            "holds": hold_list,
            "reach": holds.hold_reach(conn, hold_list),
            "policies": all_policies,
            "policy_names": {p.id: p.name for p in all_policies},
            "assignments": [a for a in assignments if a.scope != "default"],
            "default": next((a for a in assignments if a.scope == "default"), None),
            # The names of the conversations and matters the holds and assignments
            # name, not every one of the archive: the forms search (picker_views).
            **office_names(conn, hold_list, assignments),
            "four_eyes": review.two_approvals(conn),
            "can_edit": session_of(request).role in (ADMIN, ARCHIVIST),
            "is_admin": session_of(request).role == ADMIN,
        }

    await practice_zone(request)  # the page shows times in it
    return render(request, "office.html", await read(request, load))


def office_names(
    conn: Connection, hold_list: list[holds.Hold], assignments: list[policies.Assignment]
) -> dict[str, dict[int, str]]:
    """{"conversation_names", "matter_names"}: the labels of the conversations and
    matters the page lists, each read by its key."""
    conversations = {h.spec.conversation_id for h in hold_list} | {
        int_or_none(a.subject) for a in assignments if a.scope == "conversation"
    }
    matter_ids = {h.spec.matter_id for h in hold_list} | {
        int_or_none(a.subject) for a in assignments if a.scope == "matter"
    }
    return {
        "conversation_names": conversation_names(conn, conversations),
        "matter_names": {
            int(mid): str(ref)
            for mid, ref in conn.execute(
                "SELECT id, ref FROM matters WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(m for m in matter_ids if m is not None)),),
            )
        },
    }


@routes.post("/office/holds")
@require_role(ADMIN, ARCHIVIST)
async def place_hold(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    scope = text_field(form, "scope", 20)
    dated = scope == "date_range"
    zone = await read(request, zone_of)  # the days are the practice's
    try:
        subject = None
        if scope in ("conversation", "matter"):
            # The picked number, or what was typed (no JavaScript): one match, or why not.
            subject = await read(request, lambda conn: subject_from_form(conn, form, scope))
        spec = holds.HoldSpec(
            scope=scope,
            reason=text_field(form, "reason", 500),
            conversation_id=subject if scope == "conversation" else None,
            person=(text_field(form, "person", 200) or None) if scope == "person" else None,
            matter_id=subject if scope == "matter" else None,
            from_ms=day_ms(text_field(form, "since", 20), zone) if dated else None,
            to_ms=last_ms_of_day(text_field(form, "until", 20), zone) if dated else None,
            case_name=text_field(form, "case", 200),
        )
        await submit(request, holds.place_hold(spec, session_of(request).username or ""))
    except NoMatch as e:
        session_of(request).flash("error", no_match_text(scope, e))
        raise web.HTTPSeeOther("/office") from None
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
