"""The practice's time zone for the pages that show times: people read them in it.

The box's own clock zone is UTC on an appliance; a French practice reads its records,
holds, certificates and audit trail in its own zone (register detail `time_zone`,
Europe/Paris by default), the zone typed days are read in (office/practice_days.py).

It is a lazy per-request value: the middleware only puts an unread `PracticeZone` on
the request, and a handler that renders times awaits `practice_zone(request)` before
`render` (one read on a pooled reader connection, off the loop, kept for the rest of
the request). A POST that redirects, a download, a JSON answer read nothing. It is
read again on every page, so a change made from the CLI shows on the next one, and
`render.page_context` formats every `fmt_datetime` in it.
"""

from __future__ import annotations

import logging
from contextlib import closing

from aiohttp import web

from strongroom.box import Box
from strongroom.office.export_render import DEFAULT_TIME_ZONE
from strongroom.office.practice_days import zone_of
from strongroom.web.auth import Handler
from strongroom.web.state import state_of

log = logging.getLogger(__name__)


class PracticeZone:
    """One request's practice zone, read from the archive the first time it is asked."""

    # Reads made, for the tests that check a POST or a download reads nothing.
    reads = 0

    def __init__(self, box: Box) -> None:
        self._box = box
        self._name: str | None = None

    async def name(self) -> str:
        if self._name is None:
            readers = self._box.readers
            if readers is None:  # locked: nothing to read yet
                return DEFAULT_TIME_ZONE
            try:
                PracticeZone.reads += 1
                self._name = await readers.run(zone_of)
            except Exception:  # a closing archive: the page still renders, in the default
                log.debug("practice zone not read", exc_info=True)
                self._name = DEFAULT_TIME_ZONE
        return self._name

    def name_now(self) -> str:
        """The zone for `render`, which is synchronous: the value read, else (a handler
        that forgot to await practice_zone) a read on the loop, said in the log."""
        if self._name is not None:
            return self._name
        archive = self._box.archive
        if archive is None or self._box.readers is None:
            return DEFAULT_TIME_ZONE
        log.warning("a page rendered times without awaiting practice_zone: read on the loop")
        try:
            PracticeZone.reads += 1
            with closing(archive.reader()) as conn:
                self._name = zone_of(conn)
        except Exception:
            log.debug("practice zone not read", exc_info=True)
            self._name = DEFAULT_TIME_ZONE
        return self._name


PRACTICE_ZONE: web.RequestKey[PracticeZone] = web.RequestKey("practice_zone", PracticeZone)


def _lazy(request: web.Request) -> PracticeZone:
    # An error page rendered by a middleware outside ours has none yet.
    lazy = request.get(PRACTICE_ZONE)
    if lazy is None:
        lazy = request[PRACTICE_ZONE] = PracticeZone(state_of(request).box)
    return lazy


async def practice_zone(request: web.Request) -> str:
    """The zone this request's page shows times in (the default before unlock)."""
    return await _lazy(request).name()


def zone_name_of(request: web.Request) -> str:
    """The zone for synchronous code (`render`): the one `practice_zone` read."""
    return _lazy(request).name_now()


@web.middleware
async def practice_zone_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[PRACTICE_ZONE] = PracticeZone(state_of(request).box)  # read when a page asks
    return await handler(request)
