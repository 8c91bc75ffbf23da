"""The records office on the control socket: `POST /office {"op", "params"}`.

The CLI's hold/retention/certificates/matter commands reach a running box
here; `service.run_op` does the work in a thread (a destruction VACUUMs).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from strongroom.office.service import OpRefused, run_op

if TYPE_CHECKING:
    from strongroom.box import Box


def office_routes(box: Box) -> list[web.RouteDef]:
    async def handle(request: web.Request) -> web.Response:
        from strongroom.box import BoxLocked

        try:
            body: Any = await request.json()
        except ValueError:
            return web.json_response({"error": "the request is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            return web.json_response({"error": "the request names no operation"}, status=400)
        given = body.get("params")
        params: dict[str, Any] = given if isinstance(given, dict) else {}
        try:
            archive = box.require_archive()
            result = await asyncio.to_thread(run_op, archive, body["op"], params)
        except BoxLocked:
            return web.json_response({"error": "the box is locked"}, status=409)
        except OpRefused as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    return [web.post("/office", handle)]
