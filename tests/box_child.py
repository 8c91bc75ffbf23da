"""A whole box (BoxRuntime) as a real process, for the fault, abuse and no-egress tests.

    python box_child.py DATA_DIR [--host 127.0.0.1] [--limits JSON] [--auto-pair]
                                 [--backup-target DIR]

On first run the data dir becomes a dev box (prepare_dev_box: identity, key
file for unattended unlock, admin whose passphrase is in
admin-passphrase.txt). The box listens on an ephemeral port; once it serves,
one JSON line is printed and flushed:

    {"url": "http://127.0.0.1:PORT", "peer": "ws://127.0.0.1:PORT/peer",
     "fingerprint": "...", "pid": 1234, "sign_public": "hex"}

`--auto-pair` replaces the pairing rules (button, window, admin confirmation)
by a gate that accepts every phone, so tests can pair many phones quickly.
`--limits` overrides peer limits (e.g. '{"idle_timeout_s": 2}').
The box runs until SIGTERM / SIGINT (a clean stop) or SIGKILL (a power cut).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from strongroom.config import BoxConfig, Limits
from strongroom.devbox import prepare_dev_box
from strongroom.pairing.gate import PairingAttempt, PairingOutcome
from strongroom.runtime import BoxRuntime


class AcceptEveryPhone:
    """A pairing gate for tests: every phone that asks is paired (no window, no admin)."""

    def qr_secret(self) -> bytes | None:
        return None

    def consume_qr_secret(self) -> None:
        return None

    def note_unknown_contact(self, noise_key: bytes) -> None:
        return None

    async def request(self, attempt: PairingAttempt) -> PairingOutcome:
        return PairingOutcome.accept()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--limits", default="{}")
    parser.add_argument("--auto-pair", action="store_true")
    parser.add_argument("--backup-target", type=Path)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, config: BoxConfig) -> None:
    config = config.with_overrides(
        host=args.host,
        port=0,
        limits=replace(Limits(), **json.loads(args.limits)),
        backup_target=args.backup_target,
    )
    runtime = BoxRuntime(config)
    await runtime.start()
    if runtime.box.peers is None:
        raise SystemExit(f"the box did not unlock: phase {runtime.box.phase.value}")
    if args.auto_pair:
        runtime.box.peers.gate = AcceptEveryPhone()
    assert runtime.box.keys is not None
    info = {
        "url": runtime.url,
        "peer": runtime.url.replace("http", "ws", 1) + "/peer",
        "fingerprint": runtime.box.fingerprint,
        "pid": os.getpid(),
        "sign_public": runtime.box.keys.signing_public.hex(),
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runtime.stop()


def main() -> None:
    # A fatal signal (SIGBUS, SIGSEGV, SIGABRT) prints each thread's stack to the log,
    # as `strongroom serve` does to the journal (devbox.run_serve).
    faulthandler.enable()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parse(sys.argv[1:])
    config, _new = prepare_dev_box(args.data_dir)  # runs its own event loop: before ours
    asyncio.run(_serve(args, config))


if __name__ == "__main__":
    main()
