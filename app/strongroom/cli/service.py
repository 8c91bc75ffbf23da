"""`strongroom dev | serve | pair | revoke | status`: running the box and talking to it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from strongroom.cli.common import Spec, box_config, control


def cmd_dev(args: argparse.Namespace) -> int:
    from strongroom.devbox import run_dev

    return run_dev(Path(args.data or "var/dev"), port=args.port, fresh=args.fresh)


def cmd_serve(args: argparse.Namespace) -> int:
    from strongroom.devbox import run_serve

    return run_serve(box_config(args))


def cmd_pair(args: argparse.Namespace) -> int:
    """Same as pressing the PAIR button of the running box; `--qr`: a QR offer instead."""
    if not args.qr:
        return control(args, "POST", "/pair")
    from strongroom.cli.pair_qr import show_qr_offer

    return show_qr_offer(args)


def _pair_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--qr",
        action="store_true",
        help="issue a one-time QR pairing offer and draw it in the terminal",
    )
    cmd.add_argument(
        "--json", action="store_true", help="with --qr: print the offer's payload as JSON"
    )
    cmd.add_argument(
        "--host", help="with --qr: the address phones use to reach the box (default: its own)"
    )


def cmd_revoke(args: argparse.Namespace) -> int:
    return control(args, "POST", f"/revoke/{int(args.device_id)}")


def _at(seconds: float, zone_name: str | None) -> str:
    """A time in the practice's zone, named (as the web pages show it); UTC while the
    box is locked (the zone is kept in the archive)."""
    if not zone_name:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
    from strongroom.office.export_render import zone

    local = datetime.fromtimestamp(seconds, zone(zone_name))
    return f"{local:%Y-%m-%d %H:%M} ({zone_name})"


def describe_status(status: dict[str, Any]) -> str:
    """The control socket's /status in plain lines (`--json` gives it as it is)."""
    lines = [
        f"state: {status.get('phase')}",
        f"web: {status.get('url') or '-'}",
        f"box fingerprint: {status.get('fingerprint') or '-'}",
        f"TLS key fingerprint (SPKI): {status.get('tls_key_fingerprint') or '-'}",
        f"TLS certificate SHA-256: {status.get('tls_fingerprint') or '-'}",
        f"pairing window: {'open' if status.get('pairing_open') else 'closed'}",
    ]
    if migration := status.get("migration"):  # docs/operations.md: "seems hung"
        lines.append(
            f"archive update under way: schema {migration[0]} to {migration[1]}"
            " (minutes on a Pi; docs/operations.md, Upgrades)"
        )
    if problem := status.get("archive_problem"):
        lines.append(f"archive not opened ({problem['kind']}): {problem['text']}")
    zone_name = status.get("time_zone")
    for job, run in sorted((status.get("night_jobs") or {}).items()):
        at = _at(run["at"], zone_name)
        lines.append(f"last {job}: {run.get('outcome')} {at}: {run.get('summary')}")
    scrub = status.get("scrub_pending")
    if scrub:
        since = _at(scrub["since_ms"] / 1000, zone_name)
        lines.append(f"scrub pending since {since}: {scrub['notice']}")
    if kept := status.get("kept_head"):  # archive/losses.py: a loss would go unnamed
        lines.append(f"WARNING: {kept['text']}")
    for name, why in sorted((status.get("faults") or {}).items()):  # the dashboard's
        lines.append(f"FAULT {name}: {why}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    return control(args, "GET", "/status", describe_status)


def _status_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print the state as JSON")


def _dev_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--port", type=int, help="web port (default 8080; a free one if busy)")
    cmd.add_argument(
        "--fresh",
        action="store_true",
        help="start a new box at the first-run wizard (the old var/dev is kept aside)",
    )


def _device_id(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("device_id", type=int)


COMMANDS: dict[str, Spec] = {
    "dev": Spec(
        cmd_dev,
        "start a dev box under var/dev (mock GPIO, loopback): what `make run` does",
        _dev_options,
    ),
    "serve": Spec(cmd_serve, "run the box service (systemd runs this on the appliance)"),
    "pair": Spec(
        cmd_pair,
        "open the pairing window of the running box (like pressing PAIR); --qr: a QR offer",
        _pair_options,
    ),
    "revoke": Spec(cmd_revoke, "revoke a paired phone on the running box", _device_id),
    "status": Spec(cmd_status, "show the running box's state (--json: as JSON)", _status_options),
}
