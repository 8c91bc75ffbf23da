"""`strongroom hold add|list|find|lift`: legal holds from scripts and SSH."""

from __future__ import annotations

import argparse
from typing import Any

from strongroom.cli.common import Spec
from strongroom.cli.records import (
    common_options,
    day,
    run_and_show,
    subject_options,
    subject_params,
    table,
    zone_option,
)


def _reach(hold: dict[str, Any]) -> str:
    """ "1 conversation, 3 records": what a hold protects."""
    n, m = int(hold["conversations"]), int(hold["records"])
    return f"{n} conversation{'s' if n != 1 else ''}, {m} record{'s' if m != 1 else ''}"


def _subject(hold: dict[str, Any]) -> str:
    """`dates 2026-10-25..2026-10-26 (Europe/Paris)` for a date-range hold: its first
    and last day in the practice's zone, not the instants stored."""
    if hold.get("days"):
        first, last, zone = hold["days"]
        return f"dates {first}..{last} ({zone})"
    return str(hold["subject"])


def _rows(holds: list[dict[str, Any]], zone: str | None = None) -> list[list[Any]]:
    """One row a hold; its days in `zone` (the practice's, as the web page shows them)."""
    return [
        [
            h["id"],
            _subject(h),
            h["case"] or "-",
            h["reason"],
            f"{h['placed_by']} {day(h['placed_at'], zone)}",
            (
                f"active: {_reach(h)}"
                if h["active"]
                else f"lifted by {h['lifted_by']} {day(h['lifted_at'], zone)}: {h['lift_reason']}"
            ),
        ]
        for h in holds
    ]


def _as_option(kind: str, value: str) -> str:
    """What to give `hold add` for a match: `--conversation 12`, `--person "Dr Martin"`."""
    return f"--{kind} {value}" if value.isascii() and value.isdigit() else f'--{kind} "{value}"'


HEADERS = ("ID", "ON", "CASE", "REASON", "PLACED", "PROTECTS")


def cmd_hold(args: argparse.Namespace) -> int:
    if args.action == "list":
        return run_and_show(
            args,
            "hold.list",
            {},
            lambda r: table(HEADERS, _rows(r["holds"], r.get("time_zone")), "No legal hold."),
        )
    if args.action == "find":
        return run_and_show(
            args,
            "hold.find",
            {"kind": args.kind, "text": args.text},
            lambda r: table(
                ("USE", "NAME"),
                [[_as_option(r["kind"], f["value"]), f["label"]] for f in r["found"]],
                f"No {r['kind']} starts with {args.text!r}.",
            ),
        )
    if args.action == "add":
        params = {**subject_params(args), "reason": args.reason, "case": args.case or ""}
        params["actor"] = args.actor
        if args.since or args.until:
            # The practice's days, as the web form reads them (office/practice_days.py).
            params |= {"from": args.since or "", "to": args.until or ""}
            params["time_zone"] = args.time_zone or ""

        def show_added(r: dict[str, Any]) -> None:
            h = r["hold"]
            print(f"hold {h['id']} placed on {_subject(h)}: protects {_reach(h)}")

        return run_and_show(args, "hold.add", params, show_added)
    params = {"id": args.id, "reason": args.reason, "actor": args.actor}
    return run_and_show(args, "hold.lift", params, lambda r: print(f"hold {r['lifted']} lifted"))


def _arguments(cmd: argparse.ArgumentParser) -> None:
    sub = cmd.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="place a legal hold on a person, conversation or matter")
    subject = subject_options(add)
    subject.add_argument(
        "--from", dest="since", metavar="DAY", help="a date-range hold: first day (YYYY-MM-DD)"
    )
    add.add_argument("--to", dest="until", metavar="DAY", help="with --from: last day, included")
    zone_option(add)
    add.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    add.add_argument("--case", help="the case name")
    common_options(add, writes=True)
    common_options(sub.add_parser("list", help="every hold, with what it protects"))
    find = sub.add_parser(
        "find", help="find a conversation, person or matter to hold by its first letters"
    )
    find.add_argument("text", help="the first letters: an owner, other party, name or reference")
    find.add_argument(
        "--kind", choices=("conversation", "person", "matter"), default="conversation"
    )
    common_options(find)
    lift = sub.add_parser("lift", help="lift a hold (needs a reason)")
    lift.add_argument("id", type=int)
    lift.add_argument("--reason", required=True)
    common_options(lift, writes=True)


COMMANDS: dict[str, Spec] = {
    "hold": Spec(cmd_hold, "legal holds: add, list, find, lift", _arguments),
}
