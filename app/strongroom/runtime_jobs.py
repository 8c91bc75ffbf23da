"""The running box's background jobs: the once-a-second tick (pairing window, clock,
LEDs, a destruction's pending scrub) and the periodic integrity check.

Functions of the `BoxRuntime` they serve (runtime.py keeps one-line methods that
call them), so the runtime module stays about starting and stopping parts.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from strongroom.archive.verify_runs import Mode
from strongroom.integrity import IntegrityStatus, check_archive, scheduled_run_since
from strongroom.office.erasure import finish_pending_scrub
from strongroom.panel_link import audit_fields

if TYPE_CHECKING:
    from strongroom.runtime import BoxRuntime

log = logging.getLogger(__name__)

# A destruction's scrub held up by a long reader is tried again this often (seconds).
SCRUB_RETRY_TICKS = 30


async def tick_loop(rt: BoxRuntime) -> None:
    """Once a second: pairing window expiry, audit of pairing events, LEDs; every
    `scrub_retry_ticks` (SCRUB_RETRY_TICKS), a destruction's scrub that a long reader
    held up (office/erasure.py); the pages that show it pending read the marker file."""
    ticks = 0
    while True:
        await asyncio.sleep(1.0)
        ticks += 1
        try:
            rt.pairing.tick()
            await audit_pairing_events(rt)
            await rt.watch_clock()
            rt.refresh_panel()
            if ticks % rt.scrub_retry_ticks == 0 and rt.box.archive is not None:
                await asyncio.to_thread(finish_pending_scrub, rt.box.archive)
        except Exception:
            log.exception("tick failed")


async def audit_pairing_events(rt: BoxRuntime) -> None:
    for event in rt.pairing.drain_events():
        action, target, details = audit_fields(event)
        await rt.box.audit("pairing", action, target, details)


async def catch_up_night_jobs(rt: BoxRuntime) -> None:
    """After unlock: last outcomes from the audit trail, and the runs skipped while locked."""
    archive = rt.box.require_archive()
    conn = archive.reader()
    try:
        rt.night_jobs.load_last(conn)
        rt.clock_watch.learn_from(conn)
    finally:
        conn.close()
    await rt.night_jobs.flush_skipped()
    await rt.watch_clock()
    if rt.announcer is not None:
        await rt.announcer.refresh_names()  # the practice name is readable now
    rt.refresh_panel()


async def periodic_check(rt: BoxRuntime) -> IntegrityStatus | None:
    """The 24-hour check: the scheduled verify, unless one (the nightly timer's)
    already ran within the interval; the same verify twice a night adds nothing."""
    archive = rt.box.archive
    since_ms = int((rt.clock() - rt.integrity_interval_s) * 1000)
    if archive is not None and await asyncio.to_thread(scheduled_run_since, archive, since_ms):
        return None
    return await check_integrity_now(rt, "scheduled")


async def check_integrity_now(rt: BoxRuntime, mode: Mode = "full") -> IntegrityStatus | None:
    """Verify the archive now (`mode`: full, incremental or as scheduled); None
    while the box is locked.

    A failure turns the panel to INTEGRITY_FAILURE and stays so until a
    later check passes; either way the verdict is an audit event.
    """
    archive = rt.box.archive
    if archive is None:
        return None
    status = await asyncio.to_thread(check_archive, archive, rt.clock, mode)
    rt.integrity = status
    rt.box.integrity = status
    rt.integrity_ok = status.ok
    if not status.ok:
        log.error("integrity check failed: %s", "; ".join(status.problems[:3]))
    rt.refresh_panel()
    try:
        await rt.box.audit("box", status.audit_action, "archive", status.audit_details())
    except Exception:  # a damaged archive may refuse the write: the panel already says so
        log.exception("could not record the integrity check in the audit trail")
    return status
