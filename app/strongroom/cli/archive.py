"""`strongroom verify | devices | verify-export`: checking what the archive holds."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from strongroom.cli.common import Spec, night_job, unlocked_box

if TYPE_CHECKING:
    from strongroom.archive.verify_runs import Mode


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-check the archive, in the running box if there is one: everything by default,
    `--incremental` what is new plus a slice of the rest, `--scheduled` as the nightly
    timer does (incremental, full once a week)."""
    if args.status:
        return _status(args)
    body = {"mode": _mode(args)}
    return night_job(args, "verify", _verify_here, body, as_json=bool(args.json))


# How `verify --status` names why a run was made (verifications.purpose).
_PURPOSE_WORDS = {
    "scheduled": "nightly schedule",
    "manual": "check now",
    "register": "GDPR register",
    "restore": "after a restore",
    "": "not recorded",
}


def _status(args: argparse.Namespace) -> int:
    """What was verified when: the running box answers, else the archive is opened here."""
    from strongroom.cli.common import box_config
    from strongroom.control import call

    try:
        code, answer = asyncio.run(call(box_config(args).data_dir, "GET", "/verifications"))
    except OSError:  # no box running: read the archive here
        from strongroom.archive.verify_runs import recent_runs_json

        with unlocked_box(args) as box:
            runs = recent_runs_json(box.require_archive())
    else:
        if code != 200 or not isinstance(answer, dict) or "runs" not in answer:
            print(f"strongroom: verify --status: the box answered {code}", file=sys.stderr)
            return 75 if code == 409 else 1
        runs = list(answer["runs"])
    return _print_runs(runs, bool(args.json))


def _print_runs(runs: list[Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps({"runs": runs}, ensure_ascii=False))
        return 0
    if not runs:
        print("no verification has run yet")
    for run in runs:
        when = datetime.fromtimestamp(int(run["finished_at_ms"]) / 1000, UTC)
        print(
            f"{when:%Y-%m-%d %H:%M} UTC  {run['kind']:11s}"
            f"  {_PURPOSE_WORDS.get(str(run.get('purpose', '')), 'not recorded'):16s}"
            f"  {'passed' if run['ok'] else 'FAILED'}  tree size {run['tree_size']}"
            f"  records {run['records']}  problems {run['problems']}"
        )
    return 0


def _mode(args: argparse.Namespace) -> Mode:
    if args.incremental:
        return "incremental"
    if args.scheduled:
        return "scheduled"
    return "full"


def _verify_here(args: argparse.Namespace) -> int:
    from strongroom.archive.verify_runs import run_verification

    with unlocked_box(args) as box:
        report, run = run_verification(box.require_archive(), _mode(args))
        details = {"ok": report.ok, "problems": len(report.problems), "kind": run.kind}
        asyncio.run(box.audit("cli", "verify", "archive", details))
    if args.json:
        answer = {
            "ok": report.ok,
            "problems": report.problems,
            "notes": report.notes,
            **run.to_json(),
        }
        print(json.dumps(answer, ensure_ascii=False))
        return 0 if report.ok else 1
    print(
        f"{run.kind} verify. log leaves: {report.leaves}  records: {report.records} "
        f"(destroyed: {report.destroyed})  blobs: {report.blobs}"
        f"  audit events: {report.audit_events}"
    )
    if run.kind == "incremental":
        print(
            f"since the verified head of size {run.from_size}; older log"
            f" [{run.sample_from}, {run.sample_to}) re-read"
        )
    if report.tree_head is not None:
        print(
            f"signed tree head: size {report.tree_head.tree_size} "
            f"root {report.tree_head.root_hash.hex()}"
        )
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    for note in report.notes:  # an acknowledged loss, a kept head not written (losses.py)
        print(f"NOTE: {note}")
    print("OK: the archive verifies" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def _verify_options(cmd: argparse.ArgumentParser) -> None:
    which = cmd.add_mutually_exclusive_group()
    which.add_argument(
        "--incremental",
        action="store_true",
        help="only what is new since the last verified head, its consistency proof and"
        " a rotating slice of the older log (full instead after a failure)",
    )
    which.add_argument(
        "--scheduled",
        action="store_true",
        help="what the nightly timer runs: incremental, full once a week",
    )
    which.add_argument(
        "--status",
        action="store_true",
        help="list what was verified when (the Integrity page's recent checks), run nothing",
    )
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_devices(args: argparse.Namespace) -> int:
    from strongroom.archive.listings import list_devices

    with unlocked_box(args) as box, contextlib.closing(box.require_archive().reader()) as conn:
        rows = list_devices(conn)
    if not rows:
        print("no paired device")
    for row in rows:
        state = "revoked" if row.revoked_at else "active"
        print(
            f"{row.id:4d}  {row.name:20s}  {row.owner:20s}  {row.pairing_method:7s}  "
            f"{state:8s}  records={row.records}  key={row.fingerprint}"
        )
    return 0


def cmd_verify_export(args: argparse.Namespace) -> int:
    """Check a bundle offline; with --expect-fingerprint or --data, also whose key signed it."""
    from strongroom.office.verify_export import main as verify_export_main

    expected: list[tuple[str, str]] = []
    if args.expect_fingerprint:
        expected.append((args.expect_fingerprint, "--expect-fingerprint"))
    if args.data:
        from strongroom.cli.exports import local_identity

        facts = local_identity(args)
        expected.append((facts.signing_fingerprint, f"the box in {args.data}"))
    return verify_export_main([args.file], expected=expected)


def _export_file(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("file")
    cmd.add_argument(
        "--expect-fingerprint",
        help="the signing key fingerprint the box shows (Identity page): refuse any other key",
    )


COMMANDS: dict[str, Spec] = {
    "verify": Spec(
        cmd_verify,
        "re-check the archive: log, records, blobs, signed tree head (--incremental: what"
        " is new and a slice of the rest)",
        _verify_options,
    ),
    "devices": Spec(cmd_devices, "list paired phones"),
    "verify-export": Spec(
        cmd_verify_export,
        "check a sealed export or destruction certificate (compare with --data's box)",
        _export_file,
    ),
}
