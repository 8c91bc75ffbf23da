"""What the control socket offers (strongroom.control): the CLI's view of a running box.

Each endpoint maps to what the PAIR button, the web UI or a timer would do.
The night jobs (`POST /jobs/<name>`) answer with the job's outcome; the HTTP
status mirrors it (200 done, 409 skipped because locked, 500 failed) so that a
client that only looks at the status still gets it right.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from strongroom.appliance.nightjobs import DONE, JOBS, SKIPPED
from strongroom.archive.errors import RecordRejected
from strongroom.archive.losses import kept_head_json
from strongroom.archive.scrub import scrub_status
from strongroom.archive.verify_runs import MODES, recent_runs_json
from strongroom.office.control_routes import office_routes
from strongroom.office.export_control import control_routes as export_routes
from strongroom.office.export_render import practice_time_zone
from strongroom.pairing.control_routes import pairing_routes
from strongroom.reach.control import add_control_routes as add_reach_routes
from strongroom.runtime_panel import open_problem

if TYPE_CHECKING:
    from strongroom.box import Box
    from strongroom.runtime import BoxRuntime

log = logging.getLogger(__name__)

_HTTP_STATUS = {DONE: 200, SKIPPED: 409}


def _archive_problem(runtime: BoxRuntime) -> dict[str, str] | None:
    problem = open_problem(runtime)
    if problem is None:
        return None
    return {"kind": problem.kind, "cause": problem.cause, "text": problem.text}


async def _practice_zone(box: Box) -> str | None:
    if box.readers is None:
        return None
    try:
        return await box.readers.run(practice_time_zone)
    except Exception:  # a closing archive: the CLI says UTC, as while locked
        log.debug("practice zone not read", exc_info=True)
        return None


def control_app(runtime: BoxRuntime) -> web.Application:
    app = web.Application()
    routes = web.RouteTableDef()
    box = runtime.box

    @routes.get("/status")
    async def status(_request: web.Request) -> web.Response:
        pairing = runtime.pairing.status()
        return web.json_response(
            {
                "phase": box.phase.value,
                # While the phase is "updating": the schema versions, from and to.
                "migration": list(box.migration) if box.migration else None,
                "url": runtime.url,
                "fingerprint": box.fingerprint,
                "tls_fingerprint": runtime.tls_fingerprint(),
                "tls_key_fingerprint": runtime.tls_key_fingerprint(),
                "pairing_open": pairing.open,
                "night_jobs": {o.job: o.to_json() for o in runtime.night_jobs.last.values()},
                "scrub_pending": scrub_status(runtime.config.archive_path),
                # While the box cannot write tree_head.latest (archive/losses.py).
                "kept_head": kept_head_json(box.archive),
                # Why the last unlock could not open the archive (damaged or not).
                "archive_problem": _archive_problem(runtime),
                # What the box found wrong with itself (front panel, clock, committer).
                "faults": dict(box.faults),
                # The practice's zone `strongroom status` shows times in (None while
                # locked: the archive holds it); the times above stay UTC instants.
                "time_zone": await _practice_zone(box),
            }
        )

    @routes.post("/pair")
    async def pair(_request: web.Request) -> web.Response:
        runtime.press_pair("cli")
        await box.audit("cli", "pairing.press", "control socket")
        return web.json_response({"pairing_open": bool(runtime.pairing.status().open)})

    @routes.post("/integrity")
    async def integrity(_request: web.Request) -> web.Response:
        status = await runtime.check_integrity_now()
        if status is None:
            return web.json_response({"phase": box.phase.value}, status=409)
        return web.json_response({"ok": status.ok, "problems": list(status.problems)})

    @routes.get("/verifications")
    async def verifications(_request: web.Request) -> web.Response:
        # What was verified when (`strongroom verify --status`), as the Integrity page.
        archive = box.archive
        if archive is None:
            return web.json_response({"phase": box.phase.value}, status=409)
        runs = await asyncio.to_thread(recent_runs_json, archive)
        return web.json_response({"runs": runs})

    @routes.post("/revoke/{device_id:\\d+}")
    async def revoke(request: web.Request) -> web.Response:
        device_id = int(request.match_info["device_id"])
        try:
            revoked = await box.revoke_device(device_id, "cli", "revoked from the CLI")
        except RecordRejected as exc:  # no such phone: say so, not a 500 with no body
            return web.json_response({"revoked": False, "error": str(exc)}, status=404)
        return web.json_response({"revoked": revoked})

    @routes.post("/jobs/{job}")
    async def night_job(request: web.Request) -> web.Response:
        job = request.match_info["job"]
        if job not in JOBS:
            return web.json_response({"error": f"unknown job {job!r}"}, status=404)
        body = await request.json() if request.can_read_body else None
        target = body.get("target") if isinstance(body, dict) else None
        path = Path(target) if isinstance(target, str) and target else None
        mode = body.get("mode", "full") if isinstance(body, dict) else "full"
        if mode not in MODES:
            return web.json_response({"error": f"unknown verify mode {mode!r}"}, status=400)
        outcome = await runtime.night_jobs.run(job, path, mode)
        return web.json_response(outcome.to_json(), status=_HTTP_STATUS.get(outcome.outcome, 500))

    app.add_routes(routes)
    app.add_routes(office_routes(box))  # the records office: hold, retention, matter…
    app.add_routes(export_routes(box))  # fingerprint, export
    # `strongroom pair --qr`: a QR offer without a browser.
    add_reach_routes(app, box)  # strongroom reach on|off|status|rotate
    app.add_routes(pairing_routes(box, lambda: (runtime.config.host, runtime.port)))
    return app
