"""Remote reach page: turn the onion service on or off, knowingly, and see tor's state.

Off by default. The page says in plain words what changes when it is on, and
shows what tor reports (bootstrap, descriptor). Each change is audited
(`reach.on` / `reach.off`, by the administrator's name).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from strongroom.archive.listings import DeviceRow, list_devices
from strongroom.reach.helper import HelperUnavailable
from strongroom.reach.service import ON_FAILED, ReachNotOn
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.render import render
from strongroom.web.state import read, state_of

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

HELPER_DOWN = (
    "The remote-reach helper did not answer: is strongroom-reach-helper installed and running?"
)


@routes.get("/reach")
@require_role(ADMIN)
async def reach_page(request: web.Request) -> web.StreamResponse:
    box = state_of(request).box
    status: dict[str, Any] | None = None if box.reach is None else await box.reach.status()
    phones: list[DeviceRow] = []
    waiting: list[DeviceRow] = []
    if status and (status["devices"] or status["waiting"]) and box.readers is not None:
        devices = await read(request, list_devices)
        with_key, to_refresh = set(status["devices"]), set(status["waiting"])
        phones = [d for d in devices if d.id in with_key]
        waiting = [d for d in devices if d.id in to_refresh]
    context = {"reach": status, "phones": phones, "waiting": waiting}
    return render(request, "reach.html", context)


DONE = {
    "on": "Remote reach is on.",
    "off": "Remote reach is off.",
    "rotate": "The box has a new onion address: each phone learns it the next time it"
    " connects on the office network.",
}


async def _switch(request: web.Request, action: str) -> web.StreamResponse:
    session = session_of(request)
    reach = state_of(request).box.reach
    if reach is None:
        session.flash("error", HELPER_DOWN)
        raise web.HTTPSeeOther("/reach")
    actor = session.username or "admin"
    try:
        if action == "on":
            await reach.turn_on(actor)
        elif action == "off":
            await reach.turn_off(actor)
        else:
            await reach.rotate(actor)
    except HelperUnavailable as exc:
        log.error("remote reach: %s failed: %s", action, exc)
        session.flash("error", HELPER_DOWN)
        raise web.HTTPSeeOther("/reach") from None
    except ReachNotOn as exc:  # logged with its cause by turn_on
        log.error("remote reach: %s failed: %s", action, exc)
        session.flash("error", ON_FAILED)
        raise web.HTTPSeeOther("/reach") from None
    session.flash("success", DONE[action])
    raise web.HTTPSeeOther("/reach")


@routes.post("/reach/on")
@require_role(ADMIN)
async def reach_on(request: web.Request) -> web.StreamResponse:
    return await _switch(request, "on")


@routes.post("/reach/off")
@require_role(ADMIN)
async def reach_off(request: web.Request) -> web.StreamResponse:
    return await _switch(request, "off")


@routes.post("/reach/rotate")
@require_role(ADMIN)
async def reach_rotate(request: web.Request) -> web.StreamResponse:
    return await _switch(request, "rotate")
