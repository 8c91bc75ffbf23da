"""`strongroom verify | devices | verify-export`: checking what the archive holds."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from strongroom.cli.common import Spec, night_job, unlocked_box


def cmd_verify(args: argparse.Namespace) -> int:
    """The weekly job: re-check everything, in the running box if there is one."""
    return night_job(args, "verify", _verify_here)


def _verify_here(args: argparse.Namespace) -> int:
    from strongroom.archive.verify import verify_open_archive

    with unlocked_box(args) as box:
        report = verify_open_archive(box.require_archive())
        details = {"ok": report.ok, "problems": len(report.problems)}
        asyncio.run(box.audit("cli", "verify", "archive", details))
    print(
        f"log leaves: {report.leaves}  records: {report.records} "
        f"(destroyed: {report.destroyed})  blobs: {report.blobs}"
        f"  audit events: {report.audit_events}"
    )
    if report.tree_head is not None:
        print(
            f"signed tree head: size {report.tree_head.tree_size} "
            f"root {report.tree_head.root_hash.hex()}"
        )
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("OK: the archive verifies" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def cmd_devices(args: argparse.Namespace) -> int:
    from strongroom.archive.queries import list_devices

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
    "verify": Spec(cmd_verify, "re-check the whole archive: log, records, blobs, signed tree head"),
    "devices": Spec(cmd_devices, "list paired phones"),
    "verify-export": Spec(
        cmd_verify_export,
        "check a sealed export or destruction certificate (compare with --data's box)",
        _export_file,
    ),
}
