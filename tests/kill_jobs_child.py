"""One records-office job for the SIGKILL tests: it runs the job and is killed somewhere in it.

    python kill_jobs_child.py DATA_DIR ENTROPY_HEX PAUSE JOB ARGS...

ENTROPY_HEX is the box's 32-byte root secret (what the 24 words encode): every
archive, blob, signing and backup key is derived from it, as on a real box.
JOB and its ARGS:

    retention NOW_MS              retention.run at NOW_MS
    export OUT_PATH CONV_ID       export_bundle of one conversation to OUT_PATH
    backup TARGET_DIR KEEP        backup.run to TARGET_DIR keeping KEEP sets
    migrate step N                migrate(); SIGKILL itself at the N-th SQLite progress call
    migrate timer MICROSECONDS    migrate(); SIGKILL itself after that many microseconds

PAUSE is `none` or the name of a point inside the job (see PAUSE_POINTS): when
the job reaches it the child prints `at POINT` and waits there to be killed, so
the parent can cut the power at exactly that moment. Lines printed (each flushed):
READY (archive open), START (job begins), `member N` / `progress STAGE` while
working, `at POINT`, DONE (the job returned). After DONE it waits to be killed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strongroom.archive import db
from strongroom.archive.store import Archive
from strongroom.identity import derive_box_keys

# Each job imports only its own modules: the export's PDF library alone takes
# most of a second to import, and the migration child is started many times.


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_to_be_killed() -> None:
    sys.stdin.readline()  # the parent never writes: this blocks until SIGKILL
    raise SystemExit("the parent closed stdin instead of killing the job")


def pause_before(owner: Any, name: str, point: str) -> None:
    """Replace owner.name (a module's function or an object's method) to stop at `point` first."""
    original: Callable[..., Any] = getattr(owner, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        say(f"at {point}")
        wait_to_be_killed()
        return original(*args, **kwargs)

    setattr(owner, name, paused)


def pause_after(owner: Any, name: str, point: str) -> None:
    """Replace owner.name so that it stops at `point` once it has returned."""
    original: Callable[..., Any] = getattr(owner, name)

    def paused(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        say(f"at {point}")
        wait_to_be_killed()
        return result

    setattr(owner, name, paused)


def arm_retention(archive: Archive, point: str) -> None:
    from strongroom.office import retention

    if point == "erased":  # inside the write transaction, content rows deleted
        pause_after(retention, "erase_in_txn", point)
    elif point == "certified":  # inside the transaction, certificate and audit leaf written
        pause_after(retention, "record_certificate", point)
    elif point == "committed":  # the destruction (the job's one write) is durable
        pause_after(archive, "write", point)
    elif point == "scrub":  # blob files deleted, WAL and free pages not yet scrubbed
        pause_before(retention, "scrub_storage", point)


def arm_export(archive: Archive, point: str) -> None:
    # The export's only write is its audit event, made once the bundle is sealed.
    if point == "sealed":  # bundle complete in its .partial file, export not yet audited
        pause_before(archive, "write", point)
    elif point == "audited":  # export audited, bundle not yet renamed into place
        pause_after(archive, "write", point)


def arm_backup(archive: Archive, point: str) -> None:
    from strongroom.office import backup

    if point == "blobs":  # database stream written in the .partial- set, no blob copied yet
        pause_before(backup, "_copy_blobs", point)
    elif point == "renamed":  # the new set is in place, old sets not yet pruned
        pause_before(backup, "_apply_retention", point)
    elif point == "pruning":  # old sets pruned, pool files not yet collected
        original = backup.list_sets
        calls = [0]

        def list_then_pause(target_dir: Path) -> list[Path]:
            calls[0] += 1
            if calls[0] == 2:  # the second listing follows the removal of old sets
                say(f"at {point}")
                wait_to_be_killed()
            return original(target_dir)

        backup.list_sets = list_then_pause


def count_members() -> None:
    """Report each member of an export as it is written, so a kill can land after any."""
    from strongroom.office.sealed import SealedBundleWriter

    original = SealedBundleWriter.add_bytes
    members = [0]

    def counted(self: SealedBundleWriter, name: str, data: bytes, *, compress: bool = True) -> None:
        original(self, name, data, compress=compress)
        members[0] += 1
        say(f"member {members[0]}")

    SealedBundleWriter.add_bytes = counted  # type: ignore[method-assign]


def progress(stage: str, done: int, total: int) -> None:
    say(f"progress {stage} {done} {total}")


def migrate_and_die(path: Path, key: bytes, how: str, amount: int) -> None:
    conn = db.connect(path, key)
    if how == "step":
        calls = [0]

        def on_step() -> int:
            calls[0] += 1
            if calls[0] == amount:
                os.kill(os.getpid(), signal.SIGKILL)
            return 0

        conn.set_progress_handler(on_step, 1)
    else:

        def kill_later() -> None:
            time.sleep(amount / 1_000_000)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=kill_later, daemon=True).start()
    say("START")
    db.migrate(conn)
    say("DONE")
    wait_to_be_killed()


def main() -> None:
    data_dir, entropy_hex, pause, job, *args = sys.argv[1:]
    keys = derive_box_keys(bytes.fromhex(entropy_hex))
    if job == "migrate":
        migrate_and_die(Path(data_dir) / "archive.db", keys.archive_key, args[0], int(args[1]))
        return
    archive = Archive.open(Path(data_dir), keys.archive_key, keys.blob_key, keys.signing_key)
    say("READY")
    if job == "retention":
        from strongroom.office import retention

        arm_retention(archive, pause)
        say("START")
        retention.run(archive, int(args[0]))
    elif job == "export":
        from strongroom.office import export

        arm_export(archive, pause)
        count_members()
        scope = export.ExportScope("conversation", conversation_id=int(args[1]))
        request = export.ExportRequest(scope, "me.durand", "Tribunal judiciaire", "RG 24/123")
        say("START")
        export.export_bundle(archive, request, Path(args[0]))
    elif job == "backup":
        from strongroom.office import backup

        arm_backup(archive, pause)
        say("START")
        backup.run(archive, Path(args[0]), keys.backup_key, progress, keep=int(args[1]))
    else:
        raise SystemExit(f"unknown job {job}")
    say("DONE")
    wait_to_be_killed()


if __name__ == "__main__":
    main()
