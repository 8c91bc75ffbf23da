"""`strongroom certificates list|get`: signed destruction certificates."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from strongroom.cli.common import Spec
from strongroom.cli.records import Refused, common_options, day, office_op, run_and_show, table


def cmd_certificates(args: argparse.Namespace) -> int:
    if args.action == "list":

        def show(r: dict[str, Any]) -> None:
            rows = [
                [
                    c["id"],
                    day(c["created_at"], r.get("time_zone")),
                    c["approver"],
                    c["records"],
                    c["sha256"][:16],
                ]
                for c in r["certificates"]
            ]
            headers = ("ID", "DATE", "APPROVED BY", "RECORDS", "SHA-256")
            table(headers, rows, "No destruction certificate.")

        return run_and_show(args, "certificates.list", {}, show)
    try:
        answer = office_op(args, "certificates.get", {"id": args.id})
    except Refused as exc:
        print(f"strongroom: {str(exc).rstrip('.')}; nothing was written", file=sys.stderr)
        return 2
    out = Path(args.out)
    data = base64.b64decode(answer["zip"])
    try:
        out.write_bytes(data)
    except OSError as exc:
        print(f"strongroom: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"id": args.id, "out": str(out), "bytes": len(data)}))
    else:
        print(f"certificate {args.id} written to {out} (VERIFY.txt inside says how to check it)")
    return 0


def _arguments(cmd: argparse.ArgumentParser) -> None:
    sub = cmd.add_subparsers(dest="action", required=True)
    common_options(sub.add_parser("list", help="every destruction certificate"))
    get = sub.add_parser("get", help="download one certificate as a verifiable .zip")
    get.add_argument("id", type=int)
    get.add_argument("--out", required=True, help="FILE.zip")
    common_options(get)


COMMANDS: dict[str, Spec] = {
    "certificates": Spec(cmd_certificates, "destruction certificates: list, get", _arguments),
}
