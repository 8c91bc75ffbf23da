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
from strongroom.web.state import read, state_of

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
    context = {
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
    await practice_zone(request)  # the page shows times in it
    return render(request, "integrity.html", context)
