"""The running box's front panel and systemd status line: what the LEDs and
`systemctl status strongroom` say, from the runtime's state.

Functions of the `BoxRuntime` they serve (runtime.py keeps one-line methods).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from strongroom.appliance.gpio import open_panel, pin_factory_for
from strongroom.appliance.health import read_health
from strongroom.archive.scrub import SCRUB_PENDING_STATUS, pending_since_ms
from strongroom.panel_link import panel_inputs
from strongroom_panel.state import derive_state

if TYPE_CHECKING:
    from strongroom.runtime import BoxRuntime

log = logging.getLogger(__name__)

PANEL_FAULT = "panel"


def start_panel(rt: BoxRuntime, loop: asyncio.AbstractEventLoop) -> None:
    try:
        factory = rt.pin_factory or pin_factory_for(rt.config)

        def from_panel_thread() -> None:
            # gpiozero calls back on its own thread; the pairing service lives on the loop.
            loop.call_soon_threadsafe(rt.press_pair, "button")

        rt.panel = open_panel(factory, from_panel_thread)
    except Exception as exc:  # the hardware edge: whatever lgpio/gpiozero raise
        # The box still works from the web UI, but nobody may think the
        # panel is fine: a fault on the dashboard and in systemctl status.
        log.error("front panel unavailable: %s", exc)
        rt.panel = None
        rt.box.faults[PANEL_FAULT] = f"{type(exc).__name__}: {exc}"


def refresh_panel(rt: BoxRuntime) -> None:
    publish_status(rt)
    if rt.panel is None:
        return
    try:
        disk = read_health(rt.config.data_dir).disk.percent
    except OSError:
        disk = 0.0
    inputs = panel_inputs(
        now=rt.clock(),
        phase=rt.box.phase,
        booting=rt.booting,
        pairing=rt.pairing.status(),
        disk_percent=disk,
        backup_running=False,
        integrity_ok=rt.integrity_ok,
        error=rt.error,
        job_failed=rt.night_jobs.failed,
    )
    rt.panel.show(derive_state(inputs))


def publish_status(rt: BoxRuntime) -> None:
    """The line `systemctl status strongroom` shows: phase, URL and failed night jobs."""
    line = f"{rt.box.phase.value} at {rt.url}"
    for name, why in sorted(rt.box.faults.items()):
        line += f" | {name} fault: {why}"
    if failures := rt.night_jobs.status_line():
        line += f" | {failures}"
    if pending_since_ms(rt.config.archive_path) is not None:
        line += f" | {SCRUB_PENDING_STATUS}"
    if line != rt.status_line:
        rt.status_line = line
        rt.notifier.status(line)
