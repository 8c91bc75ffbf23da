"""The unattended unlock at start, off the event loop.

Opening the archive may migrate its schema after an upgrade: ~2 s at 5M records
here, minutes on a Pi with an SD card. It runs after the web UI, the panel and
the watchdog are up (systemd has READY=1), in a worker thread (Box.begin_open),
so the loop keeps serving and pinging the watchdog; were it on the loop, systemd
would kill the box mid-migration at every start, forever.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import sqlcipher3

from strongroom.archive.errors import ArchiveError
from strongroom.box import BoxBusy
from strongroom.identity import KeystoreError
from strongroom.integrity import damaged_at_open
from strongroom.unlock import BoxPhase, keys_from_keyfile, read_unlock_choice

if TYPE_CHECKING:
    from strongroom.runtime import BoxRuntime

log = logging.getLogger(__name__)


async def unlock_unattended(runtime: BoxRuntime) -> None:
    """Open the box with the key file if unattended mode is chosen; stay up, locked,
    if that fails (an admin can still unlock by hand on the web UI)."""
    box = runtime.box
    if read_unlock_choice(runtime.config).mode != "unattended":
        return
    if box.phase is not BoxPhase.LOCKED:
        return
    try:
        keys = await asyncio.to_thread(keys_from_keyfile, box.config)
        await box.open_off_loop(keys)
    except BoxBusy:  # an admin unlocked by hand meanwhile
        return
    except (KeystoreError, ArchiveError, OSError, ValueError, sqlcipher3.Error) as exc:
        if box.open_abandoned:  # stopped mid-migration: interrupted, rolled back whole
            log.warning("the archive's migration was interrupted by the stop")
            return
        log.error("unattended unlock failed: %s", type(exc).__name__)
        if (damage := damaged_at_open(exc, runtime.config.data_dir, runtime.clock)) is not None:
            runtime.integrity, runtime.integrity_ok = damage, False
            runtime.refresh_panel()
