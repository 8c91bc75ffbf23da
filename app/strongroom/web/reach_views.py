"""Remote reach page: turn the onion service on or off, knowingly, and see tor's state.

Off by default. The page says in plain words what changes when it is on, and
shows what tor reports (bootstrap, descriptor). Each change is audited
(`reach.on` / `reach.off`, by the administrator's name).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from strongroom.reach.helper import HelperUnavailable
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.render import render
from strongroom.web.state import state_of

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

HELPER_DOWN = (
    "The remote-reach helper did not answer: is strongroom-reach-helper installed and running?"
)


@routes.get("/reach")
@require_role(ADMIN)
async def reach_page(request: web.Request) -> web.StreamResponse:
    reach = state_of(request).box.reach
    status: dict[str, Any] | None = None if reach is None else await reach.status()
    return render(request, "reach.html", {"reach": status})


async def _switch(request: web.Request, on: bool) -> web.StreamResponse:
    session = session_of(request)
    reach = state_of(request).box.reach
    if reach is None:
        session.flash("error", HELPER_DOWN)
        raise web.HTTPSeeOther("/reach")
    actor = session.username or "admin"
    try:
        if on:
            await reach.turn_on(actor)
        else:
            await reach.turn_off(actor)
    except HelperUnavailable as exc:
        log.error("remote reach could not be switched %s: %s", "on" if on else "off", exc)
        session.flash("error", HELPER_DOWN)
        raise web.HTTPSeeOther("/reach") from None
    session.flash("success", "Remote reach is on." if on else "Remote reach is off.")
    raise web.HTTPSeeOther("/reach")


@routes.post("/reach/on")
@require_role(ADMIN)
async def reach_on(request: web.Request) -> web.StreamResponse:
    return await _switch(request, True)


@routes.post("/reach/off")
@require_role(ADMIN)
async def reach_off(request: web.Request) -> web.StreamResponse:
    return await _switch(request, False)
