"""`strongroom reach on|off|status|rotate`: remote reach over a Tor onion service (off by default).

Talks to the running box (its control socket): the box asks the privileged
helper to change tor's configuration, listens (or stops) on the onion socket,
and audits the change.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from strongroom.cli.common import Spec, box_config

CLI_TIMEOUT_S = 120.0
# The same plain words as the web page (templates/reach.html).
HELPER_DOWN = (
    "The tor part of remote reach is not installed or not running: scripts/install.sh sets"
    " it up (systemctl status strongroom-reach-helper)."
)
TOR_STOPPED_OFF = "not running (it runs only while remote reach is on)"
TOR_STOPPED_ON = (
    "not running, although remote reach is on: phones cannot reach the box from outside"
    " (systemctl status tor@default strongroom-reach-tor)"
)
_ROUTES = {
    "on": ("POST", "/reach/on"),
    "off": ("POST", "/reach/off"),
    "rotate": ("POST", "/reach/rotate"),
    "status": ("GET", "/reach"),
}


def describe(status: dict[str, Any]) -> str:
    """The status in a few plain lines (the same facts as the web page)."""
    lines = [f"remote reach: {'on' if status.get('enabled') else 'off'}"]
    if status.get("onion"):
        lines.append(f"onion address: {status['onion']}")
    lines.append(f"phones with a key: {status.get('clients', 0)}")
    if status.get("enabled") and status.get("onion"):
        lines.append(f"phones holding the current address: {len(status.get('current') or [])}")
        waiting = len(status.get("waiting") or [])
        lines.append(f"phones to connect once on the office network: {waiting}")
    if status.get("problem"):
        lines.append(f"problem: {status['problem']}")
    if not status.get("helper"):
        lines.append(f"helper: not answering. {HELPER_DOWN}")
    tor = status.get("tor")
    if isinstance(tor, dict) and tor.get("running") is False:
        lines.append(f"tor: {TOR_STOPPED_ON if status.get('enabled') else TOR_STOPPED_OFF}")
    elif isinstance(tor, dict) and "error" in tor:
        lines.append(f"tor: not answering ({tor['error']})")
    elif isinstance(tor, dict):
        lines.append(f"tor bootstrap: {tor['bootstrap']}% ({tor['summary']})")
        if status.get("enabled"):
            lines.append(f"descriptor published: {'yes' if tor['descriptor'] else 'not yet'}")
    return "\n".join(lines)


def cmd_reach(args: argparse.Namespace) -> int:
    from strongroom.control import call

    config = box_config(args)
    method, route = _ROUTES[args.action]
    try:
        # Turning reach on may start tor first (see helper.CALL_TIMEOUT_S).
        code, body = asyncio.run(call(config.data_dir, method, route, timeout_s=CLI_TIMEOUT_S))
    except OSError:
        print(f"strongroom: no box is running with data in {config.data_dir}", file=sys.stderr)
        return 1
    if code != 200:
        print(f"strongroom: reach {args.action}: {body.get('error', code)}", file=sys.stderr)
        if code == 503:  # the helper did not answer: what to check, as the web page says
            print(f"strongroom: {HELPER_DOWN}", file=sys.stderr)
        return 1
    print(describe(body))
    return 0


def cmd_reach_helper(args: argparse.Namespace) -> int:
    from strongroom.reach.helper import run_helper

    return run_helper(args)


def _helper_arguments(cmd: argparse.ArgumentParser) -> None:
    from strongroom.reach.helper import add_helper_arguments

    add_helper_arguments(cmd)


def _action(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("action", choices=sorted(_ROUTES))


COMMANDS: dict[str, Spec] = {
    "reach": Spec(
        cmd_reach,
        "remote reach over Tor: on, off, status, or rotate (a new onion address)",
        _action,
    ),
    "reach-helper": Spec(
        cmd_reach_helper,
        "run the privileged remote-reach helper (strongroom-reach-helper.service runs this)",
        _helper_arguments,
    ),
}
