"""The web UI application: `build_web_app(box)`.

Server-rendered pages (aiohttp + aiohttp-jinja2) that work without JavaScript;
`static/app.js` only adds live countdowns and progress. The box's server adds
the phones' `/peer` endpoint to this app itself.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from strongroom.box import Box
from strongroom.web import (
    account_views,
    archive_views,
    audit_views,
    backup_views,
    dashboard_views,
    device_views,
    i18n,
    identity_views,
    integrity_views,
    kit_views,
    office_views,
    people_views,
    persist,
    picker_views,
    policy_views,
    practice_views,
    reach_views,
    records_views,
    report_views,
    restore_notice,
    restore_views,
    setup_views,
)
from strongroom.web.jobs import JobRegistry
from strongroom.web.middleware import MIDDLEWARES
from strongroom.web.render import setup_templates
from strongroom.web.sessions import DEFAULT_IDLE_TIMEOUT_S, SessionStore
from strongroom.web.state import STATE, WebState
from strongroom.web.throttle import Throttle
from strongroom.web.tls import certificate_fingerprint
from strongroom.web.tls_key import certificate_key_fingerprint
from strongroom.web.users import DEFAULT_HASHER, PasswordHasher

STATIC_DIR = Path(__file__).parent / "static"
MAX_FORM_BYTES = 1024 * 1024  # forms are small; backups are read from a path, not uploaded
# aiohttp answers a request line over 8190 bytes with its own bare page; a longer limit
# lets the middleware answer with the box's styled 414 page instead. Past this limit (or
# a header field over aiohttp's 8190 bytes) aiohttp's bare 400 stays: it offers no hook
# for that answer (docs/architecture.md, "Requests beyond the parser's limits").
MAX_REQUEST_LINE = 64 * 1024


def build_web_app(
    box: Box,
    *,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher = DEFAULT_HASHER,
    keystore_limits: dict[str, int] | None = None,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    work_dir: Path | None = None,
    drive_roots: tuple[Path, ...] | None = None,
) -> web.Application:
    """The whole web UI for `box`.

    `clock` drives session expiry and login lockouts (tests inject one);
    `hasher` sets the Argon2id cost of account passwords and `keystore_limits`
    (opslimit/memlimit) the cost of sealing the identity in the wizard: tests
    lower both, the box keeps the defaults.
    """
    i18n.load_all()  # a broken catalogue fails now, not on a page
    app = web.Application(
        middlewares=list(MIDDLEWARES),
        client_max_size=MAX_FORM_BYTES,
        handler_args={"max_line_size": MAX_REQUEST_LINE},
    )
    if work_dir is None:
        work_dir = box.config.data_dir / "web-jobs"
    state = WebState(
        box=box,
        clock=clock,
        sessions=SessionStore(idle_timeout_s=idle_timeout_s, clock=clock),
        login_limiter=Throttle(clock=clock),
        unlock_limiter=Throttle(clock=clock),
        jobs=JobRegistry(clock=clock),
        hasher=hasher,
        keystore_limits=dict(keystore_limits or {}),
        work_dir=work_dir,
        tls_fingerprint=certificate_fingerprint(box.config.tls_dir) if box.config.tls else None,
        tls_key_fingerprint=(
            certificate_key_fingerprint(box.config.tls_dir) if box.config.tls else None
        ),
    )
    if drive_roots is not None:  # tests: plain directories stand for plugged-in drives
        state.drive_roots, state.drives_mounts_only = drive_roots, False
    app[STATE] = state
    setup_templates(app)
    for module in (
        setup_views,
        practice_views,
        kit_views,
        restore_views,
        restore_notice,
        account_views,
        people_views,
        dashboard_views,
        device_views,
        archive_views,
        office_views,
        picker_views,
        policy_views,
        records_views,
        backup_views,
        audit_views,
        integrity_views,
        report_views,
        identity_views,
        reach_views,
    ):
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)

    async def wipe_work_dir(_app: web.Application) -> None:
        # Finished exports are plaintext bundles: none outlives the process serving them.
        await asyncio.to_thread(shutil.rmtree, state.work_dir, True)

    async def close_jobs(_app: web.Application) -> None:
        await state.jobs.close()
        await wipe_work_dir(_app)

    app.on_startup.append(wipe_work_dir)
    persist.attach(app)
    app.on_cleanup.append(close_jobs)
    return app
