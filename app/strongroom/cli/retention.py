"""`strongroom retention policies|assign|unassign|due|approve|reject|extend`.

The due queue and the policies' assignments from a shell.
"""

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
)
from strongroom.office.service import retention_summary


def _show_policies(r: dict[str, Any]) -> None:
    rows = [
        [
            p["id"],
            p["preset"] or "-",
            p["name"] + (" (retired)" if p["retired"] else ""),
            p["duration"],
            p["start_event"],
            p["action"],
        ]
        for p in r["policies"]
    ]
    table(("ID", "PRESET", "NAME", "DURATION", "FROM", "AT THE END"), rows, "No policy.")
    print()
    rows = [[a["scope"], a["subject"], a["policy"], a["assigned_by"]] for a in r["assignments"]]
    table(
        ("SCOPE", "SUBJECT", "POLICY", "ASSIGNED BY"), rows, "No assignment: nothing is ever due."
    )


def show_due(r: dict[str, Any]) -> None:
    rows = [
        [
            i["id"],
            ", ".join(i["matters"]) or f"conversation {i['conversation']}",
            i["kind"],
            day(i["sent_at"], r.get("time_zone")),
            day(i["due_at"], r.get("time_zone")),
            i["policy"],
            i["state"]
            + (" by hold " + ", ".join(map(str, i["holds"])) if i["holds"] else "")
            + (" (approved: " + ", ".join(i["approvals"]) + ")" if i["approvals"] else ""),
        ]
        for i in r["items"]
    ]
    headers = ("ID", "MATTER / CONVERSATION", "KIND", "DATED", "DUE", "POLICY", "STATE")
    table(headers, rows, "Nothing is due.")
    if r["two_approvals"]:
        print("\nTwo approvals are required before a destruction (four-eyes).")


def show_destruction(r: dict[str, Any]) -> None:
    d = r.get("destruction")
    if "to_review" in r:  # the daily run
        print(retention_summary(r))
    else:
        print(f"Approved: {r['approved']} records.", end="")
        if r["waiting_second_approval"]:
            print(f" {r['waiting_second_approval']} wait for a second approver.", end="")
        print()
        if d and d["certificate"] is not None:
            print(
                f"Destroyed {d['destroyed']} records; destruction certificate {d['certificate']}"
                f" (SHA-256 {d['certificate_sha256']})."
            )
            print(f"Download it: strongroom certificates get {d['certificate']} --out FILE.zip")
    if d and d["skipped"]:
        print(f"Not destroyed (held or no longer due): {', '.join(map(str, d['skipped']))}")


def cmd_retention(args: argparse.Namespace) -> int:
    action = args.action
    if action == "policies":
        return run_and_show(args, "retention.policies", {}, _show_policies)
    if action == "due":
        return run_and_show(args, "retention.due", {}, show_due)
    if action == "assign":
        params = {**subject_params(args), "policy": args.policy, "actor": args.actor}

        def show(r: dict[str, Any]) -> None:
            a = r["assigned"]
            print(f"{a['scope']} {a['subject']} is now governed by {a['policy']!r}")

        return run_and_show(args, "retention.assign", params, show)
    if action == "unassign":
        params = {**subject_params(args), "actor": args.actor}

        def show_removed(r: dict[str, Any]) -> None:
            a = r["unassigned"]
            print(f"{a['scope']} {a['subject']} no longer has a policy of its own")

        return run_and_show(args, "retention.unassign", params, show_removed)
    if action == "approve":
        params = {"ids": args.ids, "all_due": args.all_due, "actor": args.actor}
        params["reason"] = args.reason

        def show_approval(r: dict[str, Any]) -> None:
            show_destruction(r)
            _left_alone(args.ids, r["approved"])

        return run_and_show(args, "retention.approve", params, show_approval)
    params = {"ids": args.ids, "actor": args.actor, "reason": args.reason}
    params["until"] = getattr(args, "until", "")

    def show_kept(r: dict[str, Any]) -> None:
        print(f"kept: {r['kept']} records")
        _left_alone(args.ids, r["kept"])

    return run_and_show(args, f"retention.{action}", params, show_kept)


def _left_alone(ids: list[int] | None, acted: int) -> None:
    """Records named but not due (review.named_due): said, not a silent count."""
    named = len(set(ids or ()))
    if named > acted:
        print(
            f"{named - acted} of the records named are not due"
            " (see `strongroom retention due`): nothing was done for them."
        )


def _arguments(cmd: argparse.ArgumentParser) -> None:
    sub = cmd.add_subparsers(dest="action", required=True)
    common_options(sub.add_parser("policies", help="the policies and their assignments"))
    assign = sub.add_parser("assign", help="govern a person, conversation or matter by a policy")
    subject_options(assign, default=True)
    assign.add_argument("--policy", required=True, help="preset key, policy number or name")
    common_options(assign, writes=True)
    unassign = sub.add_parser("unassign", help="remove the policy assigned to one of these")
    subject_options(unassign, default=True)
    common_options(unassign, writes=True)
    common_options(sub.add_parser("due", help="what is due for review or destruction"))
    approve = sub.add_parser("approve", help="approve destructions (signed certificate)")
    approve.add_argument("ids", nargs="*", type=int, help="record numbers from `retention due`")
    approve.add_argument("--all-due", action="store_true", help="everything due and not held")
    approve.add_argument("--reason", required=True)
    common_options(approve, writes=True)
    reject = sub.add_parser("reject", help="refuse destructions: keep one more year")
    reject.add_argument("ids", nargs="+", type=int)
    reject.add_argument("--reason", required=True)
    common_options(reject, writes=True)
    extend = sub.add_parser("extend", help="keep records until a date")
    extend.add_argument("ids", nargs="+", type=int)
    extend.add_argument("--until", required=True, help="YYYY-MM-DD")
    extend.add_argument("--reason", required=True)
    common_options(extend, writes=True)


COMMANDS: dict[str, Spec] = {
    "retention": Spec(
        cmd_retention,
        "retention: policies, assign, unassign, due, approve, reject, extend",
        _arguments,
    ),
}
