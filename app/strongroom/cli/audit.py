"""`strongroom audit`: the audit trail, filtered as on the web page (/audit).

Days (`--from`, `--to`, both included) are read in the practice's time zone
(`register-details --zone`; `--time-zone` overrides it), exactly as the web
filter reads them, and the times printed are in that zone too.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from strongroom.cli.common import Spec
from strongroom.cli.records import run_and_show, table, zone_option

HEADERS = ("WHEN", "WHO", "ACTION", "TARGET", "LOG INDEX")


def _when(ms: int, zone_name: str) -> str:
    from strongroom.office.export_render import zone

    return datetime.fromtimestamp(ms / 1000, zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _show(result: dict[str, Any]) -> None:
    zone_name = result["time_zone"]
    rows = [
        [_when(e["at"], zone_name), e["actor"], e["action"], e["target"], e["log_index"]]
        for e in result["events"]
    ]
    table(HEADERS, rows, "No event.")


def cmd_audit(args: argparse.Namespace) -> int:
    params = {
        "action": args.action or "",
        "actor": args.actor or "",
        "from": args.since or "",
        "to": args.until or "",
        "time_zone": args.time_zone or "",
        "limit": args.limit,
    }
    return run_and_show(args, "audit.list", params, _show)


def _limit(text: str) -> int:
    """1 to 1000 events: 0 printed 200 and -5 printed one, silently."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 1000")
    return value


def _arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--action", help="only this action (e.g. export.create)")
    cmd.add_argument("--actor", help="only this user (or cli, timer, box)")
    cmd.add_argument("--from", dest="since", metavar="DAY", help="first day (YYYY-MM-DD)")
    cmd.add_argument("--to", dest="until", metavar="DAY", help="last day, included")
    zone_option(cmd)
    cmd.add_argument("--limit", type=_limit, default=200, help="how many, newest first (1 to 1000)")
    cmd.add_argument("--json", action="store_true", help="print JSON for scripts")


COMMANDS: dict[str, Spec] = {
    "audit": Spec(cmd_audit, "the audit trail, newest first, filtered as on the web", _arguments),
}
