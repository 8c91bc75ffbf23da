"""`strongroom panel-fault`: what the appliance's own units run besides the box."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from strongroom.appliance.gpio import hold_fault
from strongroom.cli.common import Spec, box_config


async def _hold_until_stopped(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # non-Unix event loops
            loop.add_signal_handler(sig, stop.set)
    await hold_fault(box_config(args), stop)


def cmd_panel_fault(args: argparse.Namespace) -> int:
    """strongroom-fault.service (OnFailure= of strongroom.service): alert LED on until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_hold_until_stopped(args))
    except (ImportError, OSError, RuntimeError) as exc:
        # No GPIO library or lines (plain Debian, lines taken): one clear line in
        # the journal and a failed fault unit, not a traceback.
        print(f"strongroom: cannot show the fault on the front panel: {exc}", file=sys.stderr)
        return 1
    return 0


COMMANDS: dict[str, Spec] = {
    "panel-fault": Spec(
        cmd_panel_fault,
        "show the fault on the front panel until stopped (run by strongroom-fault.service)",
    ),
}
