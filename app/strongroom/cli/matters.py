"""`strongroom matter list|create|rename|close|reopen|attach|detach`: matters (dossiers)."""

from __future__ import annotations

import argparse
from typing import Any

from strongroom.cli.common import Spec
from strongroom.cli.records import common_options, day, run_and_show, table


def _show_list(r: dict[str, Any]) -> None:
    zone = r.get("time_zone")  # the practice's: the closing day as it was typed
    rows = [
        [
            m["id"],
            m["ref"],
            m["client"] or "-",
            m["responsible"] or "-",
            "open" if m["closed_at"] is None else f"closed {day(m['closed_at'], zone)}",
            len(m["conversations"]),
            ", ".join(m["persons"]) or "-",
        ]
        for m in r["matters"]
    ]
    headers = ("ID", "REF", "CLIENT", "RESPONSIBLE", "STATE", "CONVERSATIONS", "PERSONS")
    table(headers, rows, "No matter.")


def _show_one(r: dict[str, Any]) -> None:
    _show_list({"matters": [r["matter"]], "time_zone": r.get("time_zone")})


def cmd_matter(args: argparse.Namespace) -> int:
    if args.action == "list":
        return run_and_show(args, "matter.list", {}, _show_list)
    params = {k: v for k, v in vars(args).items() if isinstance(v, str) and v}
    params.pop("data", None)
    params.pop("config", None)
    params.pop("passphrase_file", None)
    params.pop("command", None)
    return run_and_show(args, f"matter.{args.action}", params, _show_one)


def _arguments(cmd: argparse.ArgumentParser) -> None:
    sub = cmd.add_subparsers(dest="action", required=True)
    common_options(sub.add_parser("list", help="every matter"))
    create = sub.add_parser("create", help="open a matter")
    create.add_argument("ref", help="the practice's file number")
    create.add_argument("--client", default="")
    create.add_argument("--responsible", default="")
    common_options(create, writes=True)
    rename = sub.add_parser("rename", help="change a matter's reference, client or responsible")
    rename.add_argument("matter", help="reference or number")
    rename.add_argument("--ref", default="")
    rename.add_argument("--client", default="")
    rename.add_argument("--responsible", default="")
    common_options(rename, writes=True)
    close = sub.add_parser("close", help="close a matter (starts 'end of matter' retention)")
    close.add_argument("matter")
    close.add_argument("--on", default="", help="the closing date YYYY-MM-DD (default today)")
    common_options(close, writes=True)
    reopen = sub.add_parser("reopen", help="reopen a closed matter")
    reopen.add_argument("matter")
    common_options(reopen, writes=True)
    for name, what in (("attach", "attach"), ("detach", "detach")):
        cmd_ = sub.add_parser(name, help=f"{what} a conversation or a person")
        cmd_.add_argument("matter")
        group = cmd_.add_mutually_exclusive_group(required=True)
        group.add_argument("--conversation", help="number or OWNER/REF")
        group.add_argument("--person")
        common_options(cmd_, writes=True)


COMMANDS: dict[str, Spec] = {
    "matter": Spec(cmd_matter, "matters (dossiers): create, close, attach…", _arguments),
}
