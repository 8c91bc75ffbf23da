"""`strongroom fingerprint | export`: the signing key a court expert checks, and sealed exports.

Both ask the running box over the control socket; when the box is stopped they
unlock it themselves (key file, or the admin passphrase).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from strongroom.cli.common import Spec, box_config, read_secret
from strongroom.cli.records import time_zone_name


def local_identity(args: argparse.Namespace) -> Any:
    """IdentityFacts from the running box, else from the keystore (unlocking it)."""
    from strongroom.control import call
    from strongroom.identity import BoxKeys
    from strongroom.office.identity_facts import IdentityFacts
    from strongroom.unlock import keys_from_keyfile, keys_from_passphrase, read_unlock_choice

    config = box_config(args)
    try:
        status, body = asyncio.run(call(config.data_dir, "GET", "/fingerprint"))
        if status == 200:
            return IdentityFacts(**body)
    except OSError:
        pass  # no box running on this data directory: read the keystore
    keys: BoxKeys
    if read_unlock_choice(config).mode == "unattended":
        keys = keys_from_keyfile(config)
    else:
        secret = read_secret("Admin passphrase / Phrase secrète : ", args.passphrase_file)
        keys = keys_from_passphrase(config, secret)
    return IdentityFacts.of(keys)


# As the page footer and the recovery sheet name it (their catalogues' msgid, in French).
TLS_KEY_LABEL_FR = "Clé publique HTTPS (SHA-256, ne change pas)"
TLS_KEY_LABEL_EN = "HTTPS public key (SHA-256, stays the same)"


def cmd_fingerprint(args: argparse.Namespace) -> int:
    from strongroom.office.verify_text import (
        PROTOCOL_LABEL_EN,
        PROTOCOL_LABEL_FR,
        SIGNING_LABEL_EN,
        SIGNING_LABEL_FR,
    )

    if not box_config(args).keystore_path.exists():
        print("strongroom: this data directory has no box identity", file=sys.stderr)
        return 1
    facts = local_identity(args)
    print(f"{PROTOCOL_LABEL_FR} / {PROTOCOL_LABEL_EN}:")
    print(f"  {facts.protocol_fingerprint}")
    from strongroom.web.tls_key import certificate_key_fingerprint

    tls_key = certificate_key_fingerprint(box_config(args).tls_dir)
    if tls_key is not None:  # what a browser's "public key" SHA-256 shows (web/tls_key.py)
        print(f"{TLS_KEY_LABEL_FR} / {TLS_KEY_LABEL_EN}:")
        print(f"  {tls_key}")
    print(f"{SIGNING_LABEL_FR} / {SIGNING_LABEL_EN}:")
    print(facts.signing_fingerprint)  # the last line: 64 hex digits, for scripts
    return 0


class ProgressBar:
    """A one-line bar on a terminal (stderr); silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.shown = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.shown or total <= 0:
            return
        filled = done * 30 // total
        bar = "#" * filled + "-" * (30 - filled)
        print(f"\r[{bar}] {done}/{total} records", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def _ask(value: str | None, prompt: str, option: str) -> str:
    if value:
        return value
    if sys.stdin.isatty():
        return input(prompt).strip()
    raise SystemExit(f"strongroom: say {option} (an export names for whom and why)")


def _request_body(args: argparse.Namespace) -> dict[str, Any]:
    from strongroom.office.practice_days import day_range_ms

    # Checked here for a quick refusal; the box reads the days in the practice's time
    # zone (or --time-zone), as the web form does (office/practice_days.py).
    try:
        day_range_ms(args.from_day, args.to_day, "UTC")
    except ValueError:
        raise SystemExit("strongroom: dates are written YYYY-MM-DD; nothing was written") from None
    return {
        "kind": "conversation" if args.conversation else "matter" if args.matter else "person",
        "conversation": args.conversation,
        "person": args.person,
        "matter": args.matter,
        "from_day": args.from_day,
        "to_day": args.to_day,
        "actor": args.actor or f"cli:{getpass.getuser()}",
        "recipient": _ask(args.recipient, "Pour qui / for whom: ", "--recipient"),
        "reason": _ask(args.reason, "Motif / reason: ", "--reason"),
        "zip_name": Path(args.out).name,
        "time_zone": args.time_zone,
    }


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".zip":
        print("strongroom: --out must name a .zip file; nothing was written", file=sys.stderr)
        return 2
    if out.exists():
        print(f"strongroom: {out} already exists; nothing was written", file=sys.stderr)
        return 2
    body = _request_body(args)
    bar = ProgressBar()
    summary: dict[str, Any] | None
    try:
        summary = asyncio.run(_export_via_box(box_config(args).data_dir, body, out, bar))
    except OSError:
        summary = _export_here(args, body, out, bar)  # the box is stopped
    except ValueError as exc:
        bar.close()
        print(f"strongroom: {exc}; nothing was written", file=sys.stderr)
        return 2
    bar.close()
    if summary is None:
        return 2
    print(
        f"{out}: {summary['records']} records, {summary['attachments']} attachments,"
        f" manifest SHA-256 {summary['manifest_sha256']}"
    )
    print(f"check it with: strongroom verify-export {out}  (or follow VERIFY.txt inside)")
    return 0


async def _export_via_box(
    data_dir: Path, body: dict[str, Any], out: Path, bar: ProgressBar
) -> dict[str, Any]:
    from strongroom.office.export_control import stream_export

    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    summary: dict[str, Any] | None = None
    try:
        with partial.open("wb") as sink:
            async for kind, payload in stream_export(data_dir, body):
                if kind == b"D":
                    sink.write(payload)
                elif kind == b"P":
                    progress = json.loads(payload)
                    bar(int(progress["done"]), int(progress["total"]))
                elif kind == b"R":
                    summary = json.loads(payload)
                elif kind == b"E":
                    raise ValueError(json.loads(payload)["error"])
            sink.flush()
            os.fsync(sink.fileno())
        if summary is None:
            raise ValueError("the box stopped before the bundle was complete")
        os.replace(partial, out)
        return summary
    finally:
        partial.unlink(missing_ok=True)


def _export_here(
    args: argparse.Namespace, body: dict[str, Any], out: Path, bar: ProgressBar
) -> dict[str, Any] | None:
    from strongroom.cli.common import unlocked_box
    from strongroom.office.errors import OfficeError
    from strongroom.office.export import export_bundle
    from strongroom.office.export_control import resolve_request

    with unlocked_box(args) as box:
        archive = box.require_archive()
        try:
            request = resolve_request(archive, body)
            result = export_bundle(archive, request, out, progress=bar, time_zone=body["time_zone"])
        except (OfficeError, ValueError) as exc:
            bar.close()
            print(f"strongroom: {exc}; nothing was written", file=sys.stderr)
            return None
    return {
        "records": result.records,
        "attachments": result.attachments,
        "manifest_sha256": result.manifest_sha256.hex(),
    }


def cmd_register_details(args: argparse.Namespace) -> int:
    """Name the controller and the DPO in the art. 30 register (the web page's twin);
    with no option, show them and write nothing (no audit event)."""
    from strongroom.control import call
    from strongroom.office import register_facts

    wanted = {
        register_facts.PRACTICE_NAME: args.controller,
        register_facts.CONTROLLER_ADDRESS: args.address,
        register_facts.DPO: args.dpo,
        register_facts.TIME_ZONE: args.zone,
    }
    details = {key: text for key, text in wanted.items() if text is not None}
    actor = f"cli:{getpass.getuser()}"
    body = {"details": details, "actor": actor}
    try:
        status, current = asyncio.run(
            call(box_config(args).data_dir, "POST", "/register-details", body)
        )
        if status != 200:
            print(
                f"strongroom: {current.get('error', current)}; nothing was written", file=sys.stderr
            )
            return 2
    except OSError:  # the box is stopped: write it ourselves
        from strongroom.cli.common import unlocked_box

        try:
            op = register_facts.set_details_op(details, actor)
        except ValueError as exc:
            print(f"strongroom: {exc}; nothing was written", file=sys.stderr)
            return 2
        with unlocked_box(args) as box:
            archive = box.require_archive()
            if details:  # no option given: show them, write nothing
                archive.write(op)
            current = register_facts.read_details(archive.conn)
    labels = {
        register_facts.PRACTICE_NAME: "Responsable du traitement / controller",
        register_facts.CONTROLLER_ADDRESS: "Adresse / address",
        register_facts.DPO: "Délégué à la protection des données / DPO",
        register_facts.TIME_ZONE: "Fuseau horaire / time zone",
    }
    from strongroom.office.export_render import DEFAULT_TIME_ZONE

    unset = {register_facts.TIME_ZONE: f"{DEFAULT_TIME_ZONE} (par défaut / by default)"}
    for key, label in labels.items():
        print(f"{label}: {current.get(key) or unset.get(key, register_facts.NOT_SET)}")
    return 0


def _register_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--controller", help="the controller's name (the practice)")
    cmd.add_argument("--address", help="the controller's address")
    cmd.add_argument("--dpo", help="the data protection officer: name and contact")
    cmd.add_argument("--zone", help="the practice's time zone for exports (e.g. Europe/Paris)")


def _export_options(cmd: argparse.ArgumentParser) -> None:
    what = cmd.add_mutually_exclusive_group(required=True)
    what.add_argument("--conversation", help="conversation number, phone reference or party name")
    what.add_argument("--person", help="everything about one person (an access request)")
    what.add_argument("--matter", help="every conversation of a matter (its reference or number)")
    cmd.add_argument("--from", dest="from_day", help="first day, YYYY-MM-DD (practice time zone)")
    cmd.add_argument("--to", dest="to_day", help="last day included, YYYY-MM-DD")
    cmd.add_argument("--out", required=True, help="the .zip to write")
    cmd.add_argument("--recipient", help="for whom (a court, the patient…)")
    cmd.add_argument("--reason", help="why (case number, request…)")
    cmd.add_argument("--actor", help="who exports (default: cli:<your login>)")
    cmd.add_argument(
        "--time-zone",
        type=time_zone_name,
        help="read --from/--to and show times in this zone (default: the practice's)",
    )


COMMANDS: dict[str, Spec] = {
    "fingerprint": Spec(
        cmd_fingerprint,
        "print the signing key fingerprint a sealed export is checked against, the phones'"
        " protocol fingerprint and the HTTPS public key's (stays the same across re-issues)",
    ),
    "register-details": Spec(
        cmd_register_details,
        "show or set the art. 30 register's controller, address and DPO, and the practice's"
        " time zone (no option: show them, write nothing)",
        _register_options,
    ),
    "export": Spec(
        cmd_export,
        "write a sealed export (.zip) of a conversation, a person or a matter",
        _export_options,
    ),
}
