"""Command-line interface: `strongroom …` and `python -m strongroom …`.

Each command is a small function taking parsed arguments and returning an
exit code. Secrets are read from a file or the terminal, never from argv
(argv is visible to every user of the machine) and never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom import __version__
from strongroom.config import BoxConfig, ConfigError, load_config
from strongroom.identity import (
    KeystoreError,
    WordsError,
    WrongPassphrase,
    derive_box_keys,
    entropy_to_words,
    new_entropy,
    words_to_entropy,
)
from strongroom.office.errors import BackupError

if TYPE_CHECKING:
    from strongroom.box import Box

Command = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> BoxConfig:
    data = Path(args.data) if args.data else Path("/var/lib/strongroom")
    return load_config(data, Path(args.config) if args.config else None)


def _read_secret(prompt: str, path: str | None, *, confirm: bool = False) -> str:
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again / Encore : ") != first:
        raise SystemExit("strongroom: the two passphrases differ; nothing was written")
    return first


def check_passphrase(passphrase: str) -> str | None:
    """Why a passphrase is refused, or None. Same rule in the CLI and the wizard."""
    if len(passphrase) < 12:
        return "the passphrase needs at least 12 characters"
    classes = sum(
        (
            any(c.islower() for c in passphrase),
            any(c.isupper() for c in passphrase),
            any(c.isdigit() for c in passphrase),
            any(not c.isalnum() for c in passphrase),
        )
    )
    if classes < 2 and len(passphrase) < 20:
        return "mix letters with digits or symbols, or use 20 characters or more"
    return None


def _new_passphrase(args: argparse.Namespace) -> str:
    passphrase = _read_secret(
        "Admin passphrase / Phrase secrète : ", args.passphrase_file, confirm=True
    )
    problem = check_passphrase(passphrase)
    if problem:
        raise SystemExit(f"strongroom: {problem}; nothing was written")
    return passphrase


def cmd_init(args: argparse.Namespace) -> int:
    from strongroom.box import Box

    config = _config(args)
    if _has_identity(config):
        return 1
    passphrase = _new_passphrase(args)
    entropy = new_entropy()
    words = entropy_to_words(entropy, "french" if args.language == "fr" else "english")
    box = Box(config)
    box.initialise(entropy, passphrase)
    try:
        print("Write these 24 words on paper and keep them safe. They are shown only once.")
        print(
            "Notez ces 24 mots sur papier et gardez-les en lieu sûr."
            " Ils ne sont montrés qu'une fois."
        )
        for number, word in enumerate(words, start=1):
            print(f"{number:2d}. {word}")
        print(f"Box fingerprint / empreinte : {box.fingerprint}")
    finally:
        asyncio.run(box.stop())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from strongroom.box import Box

    config = _config(args)
    if _has_identity(config):
        return 1
    entropy = _read_words(args)
    if entropy is None:
        return 2
    passphrase = _new_passphrase(args)
    box = Box(config)
    box.initialise(entropy, passphrase)
    print(f"Identity restored. Box fingerprint / empreinte : {box.fingerprint}")
    asyncio.run(box.stop())
    return 0


@contextlib.contextmanager
def _unlocked_box(args: argparse.Namespace) -> Iterator[Box]:
    """The box of this data dir, unlocked (key file or passphrase), stopped on exit."""
    from strongroom.box import Box
    from strongroom.unlock import read_unlock_choice

    config = _config(args)
    box = Box(config)
    if read_unlock_choice(config).mode == "unattended":
        box.unlock_unattended()
    else:
        box.unlock(_read_secret("Admin passphrase / Phrase secrète : ", args.passphrase_file))
    try:
        yield box
    finally:
        asyncio.run(box.stop())


def _nothing_written(exc: Exception) -> None:
    print(f"strongroom: {str(exc).rstrip('.')}; nothing was written", file=sys.stderr)


def _read_words(args: argparse.Namespace) -> bytes | None:
    """The entropy behind the 24 words typed or given in a file; None (and why) if refused."""
    text = (
        Path(args.words_file).read_text(encoding="utf-8")
        if args.words_file
        else input("24 words / 24 mots : ")
    )
    try:
        return words_to_entropy(text)
    except WordsError as exc:
        _nothing_written(exc)
        return None


def _has_identity(config: BoxConfig) -> bool:
    if config.keystore_path.exists():
        print(
            f"strongroom: {config.data_dir} already has an identity; nothing was written",
            file=sys.stderr,
        )
        return True
    return False


def cmd_verify(args: argparse.Namespace) -> int:
    from strongroom.archive.verify import verify_open_archive

    with _unlocked_box(args) as box:
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

    with _unlocked_box(args) as box, contextlib.closing(box.require_archive().reader()) as conn:
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


def cmd_words_check(args: argparse.Namespace) -> int:
    """Check 24 words without writing anything (used by support staff)."""
    text = Path(args.words_file).read_text(encoding="utf-8") if args.words_file else input()
    try:
        entropy = words_to_entropy(text)
    except WordsError as exc:
        print(f"strongroom: {exc}", file=sys.stderr)
        return 2
    print(f"valid; box fingerprint / empreinte : {derive_box_keys(entropy).fingerprint}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from strongroom.devbox import run_dev

    return run_dev(Path(args.data or "var/dev"))


def cmd_serve(args: argparse.Namespace) -> int:
    from strongroom.devbox import run_serve

    return run_serve(_config(args))


def _control(args: argparse.Namespace, method: str, route: str) -> int:
    from strongroom.control import call

    config = _config(args)
    try:
        status, body = asyncio.run(call(config.data_dir, method, route))
    except OSError:
        print(f"strongroom: no box is running with data in {config.data_dir}", file=sys.stderr)
        return 1
    print(body)
    return 0 if status == 200 else 1


def cmd_pair(args: argparse.Namespace) -> int:
    """Same as pressing the PAIR button of the running box."""
    return _control(args, "POST", "/pair")


def cmd_revoke(args: argparse.Namespace) -> int:
    return _control(args, "POST", f"/revoke/{int(args.device_id)}")


def cmd_status(args: argparse.Namespace) -> int:
    return _control(args, "GET", "/status")


def cmd_verify_export(args: argparse.Namespace) -> int:
    from strongroom.office.verify_export import main as verify_export_main

    return verify_export_main([args.file])


def cmd_retention_run(args: argparse.Namespace) -> int:
    """The daily job (systemd timer): destroy what is due and not held; list reviews."""
    import time

    from strongroom.office import retention

    with _unlocked_box(args) as box:
        result = retention.run(box.require_archive(), int(time.time() * 1000))
    plan = result.plan
    print(
        f"destroyed: {result.destruction.destroyed}  to review: {len(plan.to_review)}  "
        f"held: {len(plan.held)}"
    )
    if result.destruction.certificate is not None:
        print(f"destruction certificate: {result.destruction.certificate}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """The nightly job: an encrypted backup set on the local target."""
    from strongroom.office import backup
    from strongroom.web.settings import BACKUP_TARGET, get_setting

    with _unlocked_box(args) as box:
        archive = box.require_archive()
        # --target, else box.toml, else the drive chosen on the web UI's Backups page.
        target = Path(args.target) if args.target else box.config.backup_target
        if target is None:
            chosen = get_setting(archive.conn, BACKUP_TARGET)
            target = Path(chosen) if chosen else None
        if target is None:
            print(
                "strongroom: no backup target (Backups page, backup_target in box.toml,"
                " or --target)",
                file=sys.stderr,
            )
            return 2
        assert box.keys is not None
        result = backup.run(archive, target, box.keys.backup_key)
        details = {"set": result.set_dir.name, "tree_size": result.tree_size}
        asyncio.run(box.audit("backup-job", "backup.done", str(target), details))
    print(
        f"backup set {result.set_dir.name}: tree size {result.tree_size}, "
        f"{result.blobs} blobs ({result.blobs_copied} new)"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The GDPR art. 30 register from live data: HTML, or PDF when --out ends in .pdf."""
    import time

    from strongroom.office import report

    out = Path(args.out)
    with _unlocked_box(args) as box:
        archive = box.require_archive()
        now_ms = int(time.time() * 1000)
        integrity = report.check_integrity(archive, now_ms)
        register = report.build_register(
            archive.conn,
            now_ms=now_ms,
            data_dir=box.config.data_dir,
            box_public_key=bytes(archive.signing_key.verify_key),
            integrity=integrity,
        )
        asyncio.run(box.audit("cli", "report.view", "art30", {"format": out.suffix}))
    if out.suffix.lower() == ".pdf":
        out.write_bytes(report.render_pdf(register))
    else:
        out.write_text(report.render_html(register), encoding="utf-8")
    print(f"register written to {out}: {integrity.summary()}")
    return 0


def cmd_restore_backup(args: argparse.Namespace) -> int:
    """Rebuild a box from its 24 words and a backup set, into an empty data dir."""
    from strongroom.identity import Keystore
    from strongroom.office import restore

    config = _config(args)
    if _has_identity(config):
        return 1
    entropy = _read_words(args)
    if entropy is None:
        return 2
    passphrase = _new_passphrase(args)
    try:
        result = restore.run(Path(args.backup), entropy, config.data_dir)
    except BackupError as exc:
        _nothing_written(exc)
        return 2
    # The archive is in place and verified by restore; seal the identity last.
    Keystore.create(config.keystore_path, entropy, passphrase)
    print(
        f"restored set {result.set_name}: {result.records} records, {result.blobs} blobs, "
        f"log size {result.tree_size}"
    )
    return 0


COMMANDS: dict[str, tuple[Command, str]] = {
    "dev": (cmd_dev, "start a dev box under var/dev (mock GPIO, loopback): what `make run` does"),
    "serve": (cmd_serve, "run the box service (systemd runs this on the appliance)"),
    "pair": (cmd_pair, "open the pairing window of the running box (like pressing PAIR)"),
    "revoke": (cmd_revoke, "revoke a paired phone on the running box"),
    "status": (cmd_status, "show the running box's state"),
    "init": (cmd_init, "create a new box identity (24 words) and an empty archive"),
    "restore": (cmd_restore, "recreate the box identity from its 24 words"),
    "verify": (cmd_verify, "re-check the whole archive: log, records, blobs, signed tree head"),
    "devices": (cmd_devices, "list paired phones"),
    "check-words": (cmd_words_check, "check 24 words without writing anything"),
    "verify-export": (cmd_verify_export, "check a sealed export or destruction certificate"),
    "retention-run": (cmd_retention_run, "destroy what retention says is due (daily timer)"),
    "backup": (cmd_backup, "write an encrypted backup set to the local target (nightly timer)"),
    "restore-backup": (cmd_restore_backup, "rebuild a box from its 24 words and a backup"),
    "report": (cmd_report, "write the GDPR art. 30 register (HTML, or PDF with --out x.pdf)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strongroom", description="Strongroom box")
    parser.add_argument("--version", action="version", version=f"strongroom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_func, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--data", help="data directory (default /var/lib/strongroom)")
        cmd.add_argument("--config", help="box.toml (default: DATA/box.toml)")
        cmd.add_argument("--passphrase-file", help="read the admin passphrase from this file")
        if name == "init":
            cmd.add_argument("--language", choices=("fr", "en"), default="fr")
        if name == "revoke":
            cmd.add_argument("device_id", type=int)
        if name == "report":
            cmd.add_argument("--out", required=True, help="register.html or register.pdf")
        if name == "verify-export":
            cmd.add_argument("file")
        if name == "backup":
            cmd.add_argument("--target", help="backup directory (default: backup_target)")
        if name == "restore-backup":
            cmd.add_argument("backup", help="the backup directory (USB drive, share)")
        if name in ("restore", "check-words", "restore-backup"):
            cmd.add_argument("--words-file", help="read the 24 words from this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv[:1] == ["phone"]:
        # The reference phone client has its own commands and options.
        from strongroom.client.cli import main as phone_main

        return phone_main(argv[1:])
    args = build_parser().parse_args(argv)
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except ConfigError as exc:
        print(f"strongroom: configuration: {exc}", file=sys.stderr)
        return 2
    except WrongPassphrase:
        print("strongroom: wrong passphrase", file=sys.stderr)
        return 3
    except KeystoreError as exc:
        print(f"strongroom: {exc}", file=sys.stderr)
        return 3
    except BackupError as exc:
        print(f"strongroom: backup: {exc}", file=sys.stderr)
        return 2
