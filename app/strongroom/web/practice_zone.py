"""The practice's time zone for every page: times are shown to people in it.

The box's own clock zone is UTC on an appliance; a French practice reads its records,
holds, certificates and audit trail in its own zone (register detail `time_zone`,
Europe/Paris by default), the zone typed days are read in (office/practice_days.py).
The middleware reads it once per page request, so a change made from the CLI shows on
the next page, and `render.page_context` formats every `fmt_datetime` in it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from strongroom.office.export_render import DEFAULT_TIME_ZONE
from strongroom.office.practice_days import zone_of
from strongroom.web.auth import Handler
from strongroom.web.state import state_of

log = logging.getLogger(__name__)
PRACTICE_ZONE: web.RequestKey[str] = web.RequestKey("practice_zone", str)
# Paths that never render a time: no archive read for them.
_NO_TIMES = ("/static/", "/lang")


def zone_name_of(request: web.Request) -> str:
    """The zone this request's page shows times in (the default before unlock)."""
    return request.get(PRACTICE_ZONE) or DEFAULT_TIME_ZONE


@web.middleware
async def practice_zone_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    box = state_of(request).box
    readers = box.readers
    if readers is not None and not request.path.startswith(_NO_TIMES):
        try:
            request[PRACTICE_ZONE] = await readers.run(zone_of)
        except Exception:  # a closing archive: the page still renders, in the default zone
            log.debug("practice zone not read", exc_info=True)
    return await handler(request)
