"""The GDPR art. 30 register (compliance report), live from the archive, as HTML and PDF.

Admins, archivists and auditors may read it; every reading is audited. The
integrity line comes from the box's periodic check when there is one (a full
verify of a large archive takes minutes), otherwise it is checked now.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from strongroom.office import register_facts, report
from strongroom.office.report_render import STYLE_CSP_SOURCE
from strongroom.web.auth import ADMIN, ARCHIVIST, AUDITOR, require_role, session_of
from strongroom.web.forms import text_field
from strongroom.web.middleware import CONTENT_SECURITY_POLICY
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.state import audit, read, state_of, submit

routes = web.RouteTableDef()


async def _register(request: web.Request) -> report.Register:
    box = state_of(request).box
    archive = box.require_archive()
    now_ms = int(time.time() * 1000)
    periodic = box.integrity
    if periodic is not None:
        integrity = report.IntegrityStatus(
            int(periodic.checked_at * 1000), periodic.ok, periodic.problems, periodic.leaves
        )
    else:
        integrity = await asyncio.to_thread(report.check_integrity, archive, now_ms)

    def build() -> report.Register:
        conn = archive.reader()
        try:
            return report.build_register(
                conn,
                now_ms=now_ms,
                data_dir=box.config.data_dir,
                box_public_key=bytes(archive.signing_key.verify_key),
                integrity=integrity,
            )
        finally:
            conn.close()

    return await asyncio.to_thread(build)


@routes.get("/report")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def report_html(request: web.Request) -> web.StreamResponse:
    register = await _register(request)
    await audit(request, "report.view", "art30", {"format": "html"})
    edit = "/report/details" if session_of(request).role == ADMIN else None
    response = web.Response(text=report.render_html(register, edit), content_type="text/html")
    # The register's own inline style, and only it (the security middleware keeps this).
    policy = CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", f"style-src 'self' {STYLE_CSP_SOURCE}"
    )
    response.headers["Content-Security-Policy"] = policy
    return response


@routes.get("/report.pdf")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def report_pdf(request: web.Request) -> web.StreamResponse:
    register = await _register(request)
    pdf = await asyncio.to_thread(report.render_pdf, register)
    await audit(request, "report.view", "art30", {"format": "pdf"})
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="registre-art30.pdf"'},
    )


@routes.get("/report/details")
@require_role(ADMIN)
async def register_details(request: web.Request) -> web.StreamResponse:
    details = await read(request, register_facts.read_details)
    context = {"details": details, "default_zone": "Europe/Paris"}
    await practice_zone(request)  # the page shows times in it
    return render(request, "register_details.html", context)


@routes.post("/report/details")
@require_role(ADMIN)
async def save_register_details(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    limit = register_facts.MAX_DETAIL_CHARS
    details = {key: text_field(form, key, limit) for key in register_facts.DETAIL_KEYS}
    actor = session_of(request).username or ""
    try:
        op = register_facts.set_details_op(details, actor)
    except ValueError:
        session_of(request).flash("error", "Unknown time zone: write it as Europe/Paris.")
        raise web.HTTPSeeOther("/report/details") from None
    await submit(request, op)
    session_of(request).flash("success", "Register details saved.")
    raise web.HTTPSeeOther("/report/details")
