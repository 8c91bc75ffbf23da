"""`strongroom pair --qr`: the QR pairing offer of the running box, in the terminal.

The box issues the offer (POST /pair/qr on the control socket) exactly as the
web UI's "Pair by QR code" page does: a new one-time secret, valid 120 s, the
previous offer withdrawn. Without `--json` the code is drawn with block
characters for a phone to scan off the screen; with `--json` its payload goes
to stdout for a script (a phone app under test, a provisioning tool).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from strongroom.cli.common import box_config
from strongroom.pairing.qr import parse_offer


def show_qr_offer(args: argparse.Namespace) -> int:
    from strongroom.control import call

    config = box_config(args)
    body = {"host": args.host} if args.host else None
    try:
        status, reply = asyncio.run(call(config.data_dir, "POST", "/pair/qr", body))
    except OSError:
        print(f"strongroom: no box is running with data in {config.data_dir}", file=sys.stderr)
        return 1
    if status != 200 or not isinstance(reply, dict):
        error = reply.get("error") if isinstance(reply, dict) else reply
        print(f"strongroom: no QR offer: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reply, sort_keys=True))
        return 0
    offer = parse_offer(reply["uri"])  # also proves the box's payload is well formed
    offer.terminal(sys.stdout)
    print(reply["uri"])
    print(
        f"Scan this code with the phone within {reply['expires_in_s']} s "
        f"(box fingerprint {offer.fingerprint}). It works once."
    )
    return 0
