"""`strongroom losses`: commits the log lost (tree_head.lost*), and their acknowledgement.

The same as the Integrity page: `list` shows each lost-head file, what verify says
of it, the head it holds (SIZE:ROOTHEX) and whether an administrator acknowledged
it; `acknowledge FILE [--head SIZE:ROOTHEX] --note TEXT` records that the loss was
investigated (an audit event in the signed log; the file stays), refused with
`--head` if the file holds another head by then. Through the running box, else on
the archive opened here.
"""

from __future__ import annotations

import argparse
from typing import Any

from strongroom.cli.common import Spec
from strongroom.cli.records import common_options, run_and_show


def _show(result: dict[str, Any]) -> None:
    if result.get("kept_head"):
        print(f"WARNING: {result['kept_head']['text']}")
    found = result["losses"]
    if not found:
        print("no lost commits: no tree_head.lost file names a loss")
    for loss in found:
        ack = loss["acknowledged"]
        state = "unacknowledged" if ack is None else "acknowledged"
        print(f"{loss['file']}: {state}")
        print(f"  {loss['text']}")
        if loss["head"] is not None:
            print(f"  head: {loss['head']}")
        if ack is not None:
            print(f"  acknowledged by {ack['by']} on {ack['at_utc']}: {ack['note']}")
        elif loss["head"] is not None:
            print(
                f"  once investigated: strongroom losses acknowledge {loss['file']}"
                f" --head {loss['head']} --note TEXT"
            )


def cmd_losses(args: argparse.Namespace) -> int:
    if args.action == "list":
        return run_and_show(args, "loss.list", {}, _show)
    params = {"file": args.file, "note": args.note, "actor": args.actor, "head": args.head}

    def show(result: dict[str, Any]) -> None:
        ack = result["acknowledged"]
        print(
            f"{ack['file']}: loss acknowledged by {ack['by']} (audit event, log index"
            f" {ack['log_index']}); the file stays in the data directory"
        )

    return run_and_show(args, "loss.acknowledge", params, show)


def _head(text: str) -> str:
    from strongroom.archive.losses import LossNotAcknowledged, parse_head  # as cli/ does: late

    try:
        parse_head(text)
    except LossNotAcknowledged as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _arguments(cmd: argparse.ArgumentParser) -> None:
    sub = cmd.add_subparsers(dest="action", required=True)
    common_options(sub.add_parser("list", help="each lost-head file and its acknowledgement"))
    ack = sub.add_parser(
        "acknowledge", help="record that a loss was investigated (signed audit event)"
    )
    ack.add_argument("file", help="the lost-head file, e.g. tree_head.lost")
    ack.add_argument("--note", required=True, help="what was done (kept in the audit trail)")
    ack.add_argument(
        "--head",
        type=_head,
        help="SIZE:ROOTHEX as `losses list` prints it: refused if the file now holds another",
    )
    common_options(ack, writes=True)


COMMANDS: dict[str, Spec] = {
    "losses": Spec(
        cmd_losses,
        "commits the log lost (tree_head.lost*): list, acknowledge once investigated",
        _arguments,
    ),
}
