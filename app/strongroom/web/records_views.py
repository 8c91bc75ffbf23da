"""Records office pages: the due queue and its decisions, destruction certificates, matters.

Reading is open to the auditor; deciding, and changing matters, to admins and
archivists. Every decision is taken by the logged-in user, with a reason, and
is an audit event (the office functions write it). Approving runs as a job with
a progress page that ends on the certificate's download.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, NoReturn

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.archive.scrub import pending_since_ms
from strongroom.office import certificates, matters, retention, review
from strongroom.office.errors import OfficeError
from strongroom.office.pickers import NoMatch, conversation_names
from strongroom.office.practice_days import zone_of
from strongroom.office.service import certificate_zip
from strongroom.web.auth import ADMIN, ARCHIVIST, AUDITOR, require_role, session_of
from strongroom.web.forms import day_ms, int_or_none, text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import JobResult, Progress
from strongroom.web.picker_views import no_match_text, subject_from_form
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.state import audit, read, state_of, submit

routes = web.RouteTableDef()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _actor(request: web.Request) -> str:
    return session_of(request).username or ""


# -- the due queue -------------------------------------------------------------------------


@routes.get("/office/due")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def due_page(request: web.Request) -> web.StreamResponse:
    now = _now_ms()
    queue = await read(request, lambda conn: review.due_queue(conn, now))
    context = {"queue": queue, "groups": queue.groups(), "can_decide": _can_decide(request)}
    await practice_zone(request)  # the page shows times in it
    return render(request, "office_due.html", context)


def _can_decide(request: web.Request) -> bool:
    return session_of(request).role in (ADMIN, ARCHIVIST)


@routes.post("/office/due")
@require_role(ADMIN, ARCHIVIST)
async def decide(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    ids = [i for i in (int_or_none(str(v)) for v in form.getall("record", [])) if i is not None]
    decision = text_field(form, "decision", 20)
    reason = text_field(form, "reason", 500)
    actor = _actor(request)
    session = session_of(request)
    if not ids or not reason.strip():
        session.flash("error", "Choose records and give a reason.")
        raise web.HTTPSeeOther("/office/due")
    if decision not in ("approve", "reject", "extend"):
        raise web.HTTPBadRequest()
    now = _now_ms()
    # The due-queue rule the CLI keeps too (review.named_due): a stale or forged form
    # records nothing for a record that is not due, and the page says so.
    approving = decision == "approve"
    named = await read(request, lambda conn: review.named_due(conn, ids, now, approve=approving))
    if not named.due:
        session.flash("error", _NONE_TO_DESTROY if approving else _NONE_DUE)
        raise web.HTTPSeeOther("/office/due")
    if approving:
        if named.not_due:  # said on the job's page, beside the outcome
            session.flash("error", _SOME_NOT_DUE)
        _start_approval(request, named.due, actor, reason, now)
    try:
        if decision == "reject":
            op = review.reject(named.due, actor, reason, now)
        else:
            zone = await read(request, zone_of)
            until = day_ms(text_field(form, "until", 20), zone)
            op = review.extend(named.due, actor, until or 0, reason, now)
        kept = await submit(request, op)
    except OfficeError:
        session.flash("error", "Extending needs a date in the future.")
        raise web.HTTPSeeOther("/office/due") from None
    # 0: none of them named a record by the time of the write: nothing was recorded.
    session.flash("success" if kept else "error", "Decision recorded." if kept else _NONE_DUE)
    if kept and named.not_due:
        session.flash("error", _SOME_NOT_DUE)
    raise web.HTTPSeeOther("/office/due")


_NONE_DUE = N_(
    "None of the records chosen is due any more (the page was out of date):"
    " nothing was recorded; the list below is up to date."
)
_NONE_TO_DESTROY = N_(
    "None of the records chosen can be destroyed now: they are no longer due, or are held"
    " or kept by a reviewer (the page was out of date). Nothing was recorded; the list"
    " below is up to date."
)
_SOME_NOT_DUE = N_(
    "Some of the records chosen are no longer due for this decision (the page was out of"
    " date): nothing was done for them, only for the others."
)


def _start_approval(
    request: web.Request, ids: list[int], actor: str, reason: str, now: int
) -> NoReturn:
    """Approve as a job (its page shows the outcome, then the certificate's download)."""
    state = state_of(request)
    archive = state.box.require_archive()
    state.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def body(progress: Progress) -> JobResult:
        progress(0.1, "approve")
        result = await asyncio.to_thread(review.approve, archive, ids, actor, reason, now)
        destruction = result.destruction
        if destruction is None or destruction.certificate is None:
            if result.waiting:
                return JobResult(summary=N_("Approval recorded: a second approver is needed."))
            return JobResult(
                summary=N_("Nothing was destroyed: the records are held or no longer due.")
            )
        progress(0.8, "certificate")
        cert_id = destruction.certificate.id
        data = await asyncio.to_thread(certificate_zip, archive, cert_id)
        out = state.work_dir / f"certificate-{cert_id:06d}.zip"
        out.write_bytes(data)
        return JobResult(
            summary=N_("The records are destroyed; the signed certificate is ready."),
            file=out,
            download_name=out.name,
        )

    job = state.jobs.start("destruction", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


@routes.post("/office/run")
@require_role(ADMIN)
async def run_retention(request: web.Request) -> web.StreamResponse:
    """What the nightly timer does, now: destroy what is due under "destroy" and not held."""
    state = state_of(request)
    archive = state.box.require_archive()
    actor = _actor(request)

    async def body(progress: Progress) -> JobResult:
        progress(0.1, "retention")
        result = await asyncio.to_thread(retention.run, archive, _now_ms(), actor)
        if result.destruction.certificate is None:
            return JobResult(summary=N_("The retention run destroyed nothing."))
        return JobResult(
            summary=N_("The retention run destroyed what was due; its certificate is listed.")
        )

    job = state.jobs.start("retention", actor, body)
    raise web.HTTPSeeOther(f"/jobs/{job.id}")


# -- certificates ------------------------------------------------------------------------------


@routes.get("/office/certificates")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def certificates_page(request: web.Request) -> web.StreamResponse:
    found = await read(request, certificates.list_certificates)
    pending = pending_since_ms(state_of(request).box.config.archive_path)
    await practice_zone(request)  # the page shows times in it
    return render(
        request, "office_certificates.html", {"certificates": found, "scrub_pending": pending}
    )


@routes.get("/office/certificates/{cert_id:[0-9]{1,18}}.zip")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def certificate_download(request: web.Request) -> web.StreamResponse:
    cert_id = int(request.match_info["cert_id"])
    archive = state_of(request).box.require_archive()
    try:
        data = await asyncio.to_thread(certificate_zip, archive, cert_id)
    except OfficeError:
        raise web.HTTPNotFound() from None
    await audit(request, "certificate.download", f"certificate:{cert_id}")
    name = f"strongroom-destruction-{cert_id:06d}.zip"
    return web.Response(
        body=data,
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# -- matters -------------------------------------------------------------------------------


@routes.get("/office/matters")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def matters_page(request: web.Request) -> web.StreamResponse:
    def load(conn: Connection) -> dict[str, Any]:
        every = matters.list_matters(conn)
        # The names of the matters' own conversations only: the attach form searches
        # (picker_views), it does not list every conversation once per matter.
        return {
            "matters": every,
            "conversation_names": conversation_names(
                conn, {c for mt in every for c in mt.conversations}
            ),
            "can_edit": _can_decide(request),
        }

    await practice_zone(request)  # the page shows times in it
    return render(request, "office_matters.html", await read(request, load))


@routes.post("/office/matters")
@require_role(ADMIN, ARCHIVIST)
async def create_matter(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        op = matters.create_matter(
            text_field(form, "ref", 200),
            text_field(form, "client", 200),
            text_field(form, "responsible", 200),
            _actor(request),
        )
        await submit(request, op)
    except OfficeError:
        session_of(request).flash("error", "A matter needs a reference no other matter has.")
        raise web.HTTPSeeOther("/office/matters") from None
    session_of(request).flash("success", "Matter created.")
    raise web.HTTPSeeOther("/office/matters")


@routes.post("/office/matters/{matter_id:[0-9]{1,18}}")
@require_role(ADMIN, ARCHIVIST)
async def change_matter(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    matter_id = int(request.match_info["matter_id"])
    action = text_field(form, "action", 20)
    actor = _actor(request)
    try:
        if action == "rename":
            op = matters.rename_matter(
                matter_id,
                text_field(form, "ref", 200),
                text_field(form, "client", 200),
                text_field(form, "responsible", 200),
                actor,
            )
        elif action in ("close", "reopen"):
            zone = await read(request, zone_of)
            closed_at = (
                day_ms(text_field(form, "closed_on", 20), zone) if action == "close" else None
            )
            op = matters.set_matter_closed(
                matter_id, actor, closed=action == "close", closed_at_ms=closed_at
            )
        elif action in ("attach", "detach"):
            person = text_field(form, "person", 200) or None
            conversation = None
            if person is None:
                # The picked number, or what was typed (no JavaScript): one match, or why not.
                conversation = await read(
                    request, lambda conn: subject_from_form(conn, form, "conversation")
                )
            op = matters.attach(
                matter_id,
                actor,
                conversation_id=None if person else conversation,
                person=person,
                detach=action == "detach",
            )
        else:
            raise web.HTTPBadRequest()
        await submit(request, op)
    except NoMatch as e:
        session_of(request).flash("error", no_match_text("conversation", e))
        raise web.HTTPSeeOther("/office/matters") from None
    except OfficeError:
        session_of(request).flash("error", "The matter was not changed: check what you entered.")
        raise web.HTTPSeeOther("/office/matters") from None
    session_of(request).flash("success", "Matter updated.")
    raise web.HTTPSeeOther("/office/matters")
