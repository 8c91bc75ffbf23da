"""What the unlock page shows: the form, or "updating the archive" while a migration runs.

An unlock after an upgrade may migrate the archive's schema: milliseconds on a
dev machine, minutes on a Pi with an SD card. The migration runs in a worker
thread (Box.begin_open); the page says so, refreshes itself, and refuses a
second unlock meanwhile rather than running it twice.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.archive.open_failure import classify_open_failure
from strongroom.box import Box
from strongroom.unlock import BoxPhase
from strongroom.web.open_failure_text import open_failure_text, unopened_text
from strongroom.web.render import translator_of
from strongroom.web.state import state_of

# How long POST /unlock waits for the archive to open before answering with the
# "updating" page (which refreshes itself every UPDATING_REFRESH_S seconds).
UNLOCK_WAIT_S = 2.0
UPDATING_REFRESH_S = 3


def opening_under_way(box: Box) -> bool:
    return box.opening is not None and not box.opening.done()


def unlock_page(request: web.Request, error: str | None) -> dict[str, Any]:
    """The unlock template's context; `error` is this request's own (wrong passphrase)."""
    box = state_of(request).box
    translate = translator_of(request)
    failure = box.open_failure
    if error is None and failure is not None:
        why = classify_open_failure(failure, box.config.data_dir)
        if why is not None:  # damaged (restore a backup), or locked, full, read-only…
            error = open_failure_text(why, translate)
        else:  # a newer release's schema, or an update step that rolled back
            error = unopened_text(failure, translate)
    migration = box.migration
    return {
        "error": error,
        "busy": opening_under_way(box),
        "updating": box.phase is BoxPhase.UPDATING,
        "found": migration[0] if migration else None,
        "target": migration[1] if migration else None,
        "refresh_s": UPDATING_REFRESH_S,
    }
