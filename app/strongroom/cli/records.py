"""What the records-office command groups share (hold, retention, certificates, matter).

`office_op` runs one `office.service` operation: through the control socket
when the box is running, else on the archive opened here (the box stopped).
Output is a table for people, or JSON with `--json` for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from strongroom.cli.common import box_config, unlocked_box

DEFAULT_ACTOR = "cli"


class Refused(Exception):
    """The box (or the archive) refused the operation; the message says why."""


def office_op(args: argparse.Namespace, op: str, params: dict[str, Any]) -> Any:
    from strongroom.control import call, socket_path
    from strongroom.office.service import OpRefused, run_op

    config = box_config(args)
    if socket_path(config.data_dir).exists():
        body = {"op": op, "params": params}
        try:
            status, answer = asyncio.run(
                call(config.data_dir, "POST", "/office", body, timeout_s=900)
            )
        except OSError:
            pass  # a socket file left by a box that is gone: open the archive ourselves
        else:
            if status == 200:
                return answer
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise Refused(str(error))
    with unlocked_box(args) as box:
        try:
            return run_op(box.require_archive(), op, params)
        except OpRefused as exc:
            raise Refused(str(exc)) from exc


def run_and_show(
    args: argparse.Namespace,
    op: str,
    params: dict[str, Any],
    show: Callable[[Any], None],
    *,
    json_show: Callable[[Any], None] | None = None,
) -> int:
    """Run `op`, print its result (JSON with --json, or `json_show` when given; else
    `show`), return the exit code."""
    try:
        result = office_op(args, op, params)
    except Refused as exc:
        print(f"strongroom: {str(exc).rstrip('.')}; nothing was changed", file=sys.stderr)
        return 2
    if getattr(args, "json", False) and json_show is not None:
        json_show(result)
    elif getattr(args, "json", False):
        print(json.dumps(result, indent=1, ensure_ascii=False, sort_keys=True))
    else:
        show(result)
    return 0


def day(ms: int | None, zone_name: str | None = None) -> str:
    """The day of `ms` in `zone_name` (the practice's zone an operation answered with,
    the zone its days were typed in), else in UTC."""
    if ms is None:
        return "-"
    if zone_name:
        from strongroom.office.export_render import zone

        return datetime.fromtimestamp(ms / 1000, zone(zone_name)).strftime("%Y-%m-%d")
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def common_options(cmd: argparse.ArgumentParser, *, writes: bool = False) -> None:
    """--data etc. on a sub-command too (SUPPRESS: the group's own value is kept)."""
    keep = argparse.SUPPRESS
    cmd.add_argument("--data", default=keep, help="data directory (default /var/lib/strongroom)")
    cmd.add_argument("--config", default=keep, help="box.toml (default: DATA/box.toml)")
    cmd.add_argument("--passphrase-file", default=keep, help="read the admin passphrase here")
    cmd.add_argument("--json", action="store_true", help="print JSON for scripts")
    if writes:
        cmd.add_argument(
            "--as", dest="actor", default=DEFAULT_ACTOR, help="who does it (audit trail)"
        )


def subject_options(
    cmd: argparse.ArgumentParser, *, default: bool = False
) -> argparse._MutuallyExclusiveGroup:
    group = cmd.add_mutually_exclusive_group(required=True)
    group.add_argument("--person", help="a person's name (owner, other party, sender)")
    group.add_argument("--conversation", help="a conversation: its number or OWNER/REF")
    group.add_argument("--matter", help="a matter: its reference or number")
    if default:
        group.add_argument("--default", action="store_true", help="the default policy")
    return group


def time_zone_name(text: str) -> str:
    """A --time-zone the box knows (an IANA name, e.g. Europe/Paris), else refused as a
    usage error (exit 2): reading the days silently in Paris instead would hold or
    export other days than the ones asked for. Empty: the practice's zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not text.strip():
        return ""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(
            f"fuseau horaire inconnu / unknown time zone: {text!r}"
            " (écrivez-le / write it as Europe/Paris)"
        ) from None
    return text


def zone_option(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--time-zone",
        type=time_zone_name,
        help="read the days in this zone (default: the practice's, register-details --zone)",
    )


def subject_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "person": args.person or "",
        "conversation": args.conversation or "",
        "matter": args.matter or "",
        "default": bool(getattr(args, "default", False)),
    }
