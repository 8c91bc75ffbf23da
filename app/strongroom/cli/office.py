"""`strongroom retention-run | backup | restore-backup | report`: the records office's jobs."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from strongroom.cli.common import (
    Spec,
    night_job,
    nothing_written,
    restore_inputs,
    unlocked_box,
)
from strongroom.office.errors import BackupError

if TYPE_CHECKING:
    from strongroom.office.restore import BackupSummary


def cmd_retention_run(args: argparse.Namespace) -> int:
    """The daily job (systemd timer): destroy what is due and not held; list reviews.
    `--json` prints the same object whether the box runs or not: the night job's answer
    (JobOutcome.to_json: `outcome`, `summary`, `at`, `details` with the counts, ...)."""
    return night_job(args, "retention", _retention_here, as_json=bool(args.json))


def _retention_here(args: argparse.Namespace) -> int:
    import time

    from strongroom.appliance.nightjobs import DONE, JobOutcome, retention_outcome
    from strongroom.cli.records import run_and_show
    from strongroom.cli.retention import show_destruction

    def as_job(result: dict[str, Any]) -> None:  # what the running box answers
        summary, details = retention_outcome(result)
        outcome = JobOutcome("retention", DONE, summary, time.time(), details)
        print(json.dumps(outcome.to_json(), ensure_ascii=False))

    return run_and_show(args, "retention.run", {}, show_destruction, json_show=as_job)


def cmd_backup(args: argparse.Namespace) -> int:
    """The nightly job: an encrypted backup set on the local target."""
    return night_job(args, "backup", _backup_here, {"target": args.target})


def _backup_here(args: argparse.Namespace) -> int:
    from strongroom.office import backup
    from strongroom.web.settings import BACKUP_TARGET, get_setting

    with unlocked_box(args) as box:
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
    with unlocked_box(args) as box:
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
    from strongroom.office import restore, restore_staged

    inputs = restore_inputs(args)
    if isinstance(inputs, int):
        return inputs
    config, entropy, passphrase = inputs
    if box_answers(config.data_dir):
        print(BOX_RUNNING.format(data_dir=config.data_dir), file=sys.stderr)
        return 1
    try:
        summary = restore.describe(Path(args.backup), entropy)
    except BackupError as exc:
        nothing_written(exc)
        return 2
    print(restore_warning(summary))
    if not args.yes and not confirm("Restore this backup? / Restaurer cette sauvegarde ? [y/N] "):
        print("strongroom: restore cancelled; nothing was written", file=sys.stderr)
        return 1
    # Staged inside the data dir, so that the strongroom user, who owns the data dir
    # but not /var/lib, can restore, and a data dir holding tls/ or box.toml is fine.
    # The lock is held until the identity is sealed: a wizard restore cannot remove our
    # staging dir, nor give the box another identity between our move and our seal.
    staging = restore_staged.new_staging(config)
    try:
        with restore_staged.restore_lock(config.data_dir) as lock:
            try:
                result = restore_staged.restore_to_staging(
                    Path(args.backup), entropy, staging, config, lock=lock
                )
                restore_staged.move_into_place(config, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            # The archive is in place and verified by restore; seal the identity last.
            Keystore.create(config.keystore_path, entropy, passphrase)
    except BackupError as exc:
        nothing_written(exc)
        return 2
    except PermissionError as exc:
        print(cannot_write(config.data_dir, exc), file=sys.stderr)
        return 2
    print(
        f"restored set {result.set_name}: {result.records} records, {result.blobs} blobs, "
        f"log size {result.tree_size}"
    )
    return 0


BOX_RUNNING = (
    "strongroom: a box is running with data in {data_dir}; nothing was restored. Stop it"
    " first (systemctl stop strongroom), or restore from its set-up wizard"
    " (docs/operations.md)\n"
    "strongroom : un boîtier est en marche avec les données de {data_dir} ; rien n’a été"
    " restauré. Arrêtez-le d’abord (systemctl stop strongroom), ou restaurez depuis son"
    " assistant d’installation (docs/operations.md)"
)


def box_answers(data_dir: Path) -> bool:
    """Whether a box answers on the control socket (as `night_job` asks it)."""
    from strongroom.control import call

    try:
        asyncio.run(call(data_dir, "GET", "/status", timeout_s=10.0))
    except TimeoutError:  # (an OSError) something listens but is slow: a busy box
        return True
    except OSError:  # nobody listens (or a socket file left by a box that is gone)
        return False
    except aiohttp.ClientError:  # something listens but broke the answer: a box all the same
        return True
    return True


def cannot_write(data_dir: Path, exc: PermissionError) -> str:
    where = exc.filename or data_dir
    return (
        f"strongroom: cannot write in {where} ({exc.strerror}); nothing was restored. Run the"
        f" command as the user who owns {data_dir} (the strongroom user), or create it first:"
        f" install -d -o strongroom -g strongroom -m 0700 {data_dir} (docs/operations.md)\n"
        f"strongroom : impossible d’écrire dans {where} ({exc.strerror}) ; rien n’a été"
        f" restauré. Lancez la commande avec l’utilisateur propriétaire de {data_dir}"
        " (strongroom), ou créez-le d’abord : install -d -o strongroom -g strongroom -m 0700"
        f" {data_dir} (docs/operations.md)"
    )


def restore_warning(summary: BackupSummary) -> str:
    """What the backup holds and who must pair again (protocol.md §6.3), in FR and EN."""
    head_at = "—" if summary.head_at_ms is None else utc_text(summary.head_at_ms)
    made = utc_text(summary.created_at_ms)
    return (
        f"backup set / sauvegarde : {summary.set_name}, made / faite {made}\n"
        f"log size / taille du journal : {summary.tree_size}, signed / signé {head_at}\n"
        "Phones used after this backup have seen a longer log: they will refuse the restored"
        " box until they are paired again; what they sent since is not in this backup.\n"
        "Les téléphones utilisés après cette sauvegarde ont vu un journal plus long : ils"
        " refuseront le boîtier restauré tant qu’ils ne sont pas appairés de nouveau ; ce"
        " qu’ils ont envoyé depuis n’est pas dans cette sauvegarde.\n"
        "Phones revoked after this backup's head time are active again on the restored box:"
        " revoke them again (remote reach gives a phone its key back only on the office"
        " network).\n"
        "Les téléphones révoqués après l’heure de la tête de cette sauvegarde sont de nouveau"
        " actifs sur le boîtier restauré : révoquez-les de nouveau (l’accès à distance ne rend"
        " sa clé à un téléphone que sur le réseau du cabinet)."
    )


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def confirm(prompt: str) -> bool:
    try:
        answer = input(prompt)
    except EOFError:  # nobody to answer: no
        return False
    return answer.strip().lower() in {"y", "yes", "o", "oui"}


def _json_flag(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print JSON for scripts")


def _backup_target(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--target", help="backup directory (default: backup_target)")


def _report_out(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--out", required=True, help="register.html or register.pdf")


def _backup_source(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("backup", help="the backup directory (USB drive, share)")
    cmd.add_argument("--words-file", help="read the 24 words from this file")
    cmd.add_argument(
        "--yes", action="store_true", help="restore without asking (after reading the warning)"
    )


COMMANDS: dict[str, Spec] = {
    "retention-run": Spec(
        cmd_retention_run,
        "destroy what retention says is due (daily timer)",
        _json_flag,
    ),
    "backup": Spec(
        cmd_backup,
        "write an encrypted backup set to the local target (nightly timer)",
        _backup_target,
    ),
    "restore-backup": Spec(
        cmd_restore_backup, "rebuild a box from its 24 words and a backup", _backup_source
    ),
    "report": Spec(
        cmd_report, "write the GDPR art. 30 register (HTML, or PDF with --out x.pdf)", _report_out
    ),
}
