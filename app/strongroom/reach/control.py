"""`strongroom reach on|off|status` on the running box: routes of its control socket."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.reach.helper import HelperUnavailable
from strongroom.reach.service import ReachNotOn


def add_control_routes(app: web.Application, box: Any) -> None:
    """GET /reach, POST /reach/on|off|rotate (audited with the actor "cli")."""
    routes = web.RouteTableDef()

    @routes.get("/reach")
    async def status(_request: web.Request) -> web.Response:
        return web.json_response(await box.reach.status())

    async def switch(action: str) -> web.Response:
        try:
            if action == "on":
                await box.reach.turn_on("cli")
            elif action == "off":
                await box.reach.turn_off("cli")
            else:
                await box.reach.rotate("cli")
        except HelperUnavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)
        except ReachNotOn as exc:  # the service was withdrawn again: the CLI says so, exit 1
            return web.json_response({"error": str(exc)}, status=500)
        return web.json_response(await box.reach.status())

    @routes.post("/reach/on")
    async def turn_on(_request: web.Request) -> web.Response:
        return await switch("on")

    @routes.post("/reach/off")
    async def turn_off(_request: web.Request) -> web.Response:
        return await switch("off")

    @routes.post("/reach/rotate")
    async def rotate(_request: web.Request) -> web.Response:
        return await switch("rotate")

    app.add_routes(routes)
