"""The Integrity page: what was verified when (every run kept in `verifications`).

It shows the last full and the last incremental verify, what each covered (the
signed head, the records checked, the older range re-read), their result, when
the whole log was last re-read, and the recent runs. Admins start a run from
here (POST /verify, office_views); auditors read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.archive.losses import (
    MAX_NOTE,
    Loss,
    LossChanged,
    LossNotAcknowledged,
    acknowledge_loss,
    losses,
    parse_head,
)
from strongroom.archive.scrub import pending_since_ms
from strongroom.archive.verify_incremental import SAMPLE_MAX
from strongroom.archive.verify_runs import (
    Verification,
    WholeCoverage,
    latest,
    recent,
    whole_coverage,
)
from strongroom.web.auth import ADMIN, AUDITOR, require_role, session_of
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.state import read, state_of, submit

routes = web.RouteTableDef()

RECENT_RUNS = 20


@dataclass(frozen=True)
class IntegrityFacts:
    full: Verification | None
    incremental: Verification | None
    newest: Verification | None
    whole: WholeCoverage | None
    runs: list[Verification]
    log_size: int


def integrity_facts(conn: Connection) -> IntegrityFacts:
    runs = recent(conn, RECENT_RUNS)
    size = conn.execute("SELECT coalesce(max(tree_size), 0) FROM tree_heads").fetchone()[0]
    return IntegrityFacts(
        full=latest(conn, "full"),
        incremental=latest(conn, "incremental"),
        newest=runs[0] if runs else None,
        whole=whole_coverage(conn),
        runs=runs,
        log_size=int(size),
    )


@routes.get("/integrity")
@require_role(ADMIN, AUDITOR)
async def integrity_page(request: web.Request) -> web.StreamResponse:
    facts = await read(request, integrity_facts)
    archive = state_of(request).box.archive
    kept_head = archive.kept_head if archive is not None else None
    context: dict[str, object] = {
        # Heads not written to tree_head.latest since then (kept_head.py): a loss of
        # the last commits would go unnamed meanwhile.
        "kept_head_failing_ms": kept_head.failing_since_ms if kept_head else None,
        "kept_head_failure": kept_head.failure if kept_head else "",
        "facts": facts,
        "can_check": session_of(request).role == ADMIN,
        "periodic": state_of(request).box.integrity,
        "sample_max": SAMPLE_MAX,
        "scrub_pending": pending_since_ms(state_of(request).box.config.archive_path),
    }
    context["losses"] = await _losses(request)
    await practice_zone(request)  # the page shows times in it
    return render(request, "integrity.html", context)


async def _losses(request: web.Request) -> list[Loss]:
    archive = state_of(request).box.require_archive()
    box_key = bytes(archive.signing_key.verify_key)
    return await read(request, lambda conn: losses(archive.path.parent, conn, box_key))


async def _loss(request: web.Request) -> Loss:
    """The loss the URL names, one an admin may still acknowledge (else 404)."""
    name = request.match_info["file"]
    found = next((x for x in await _losses(request) if x.file == name), None)
    if found is None or not found.can_acknowledge:
        raise web.HTTPNotFound()
    return found


@routes.get("/integrity/losses/{file}/acknowledge")
@require_role(ADMIN)
async def acknowledge_page(request: web.Request) -> web.StreamResponse:
    loss = await _loss(request)
    return render(request, "integrity_acknowledge.html", {"loss": loss, "max_note": MAX_NOTE})


@routes.post("/integrity/losses/{file}/acknowledge")
@require_role(ADMIN)
async def acknowledge(request: web.Request) -> web.StreamResponse:
    loss = await _loss(request)
    form = await request.post()
    note = form.get("note")
    note = note.strip() if isinstance(note, str) else ""
    session = session_of(request)
    if not note or len(note) > MAX_NOTE:
        session.flash("error", "Write what was done about the loss (at most 1,000 characters).")
        raise web.HTTPSeeOther(f"/integrity/losses/{loss.file}/acknowledge")
    archive = state_of(request).box.require_archive()
    shown = form.get("head")  # the head the confirmation page showed (review L2)
    try:
        expect = parse_head(shown if isinstance(shown, str) else "")
        op = acknowledge_loss(
            archive.path.parent,
            bytes(archive.signing_key.verify_key),
            loss.file,
            session.username or "",
            note,
            expect=expect,
        )
        await submit(request, op)
    except LossChanged:  # moved away, and a new loss written under the freed name
        session.flash(
            "error",
            "The file changed since its confirmation page was shown: nothing was"
            " acknowledged. Look at the loss again.",
        )
    except LossNotAcknowledged:  # another admin was first, or a page without its head
        session.flash("error", "This loss can no longer be acknowledged: see the page.")
    else:
        session.flash("success", "Loss acknowledged: it stays listed, and verify no longer fails.")
    raise web.HTTPSeeOther("/integrity")
