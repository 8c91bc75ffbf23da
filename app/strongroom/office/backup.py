"""Encrypted backup sets to a local target (USB drive, SMB/NFS mount on the LAN).

`run` takes a consistent snapshot of the live SQLCipher database with
`VACUUM INTO` on a keyed connection (the copy stays encrypted under the archive
key, written inside the data dir), streams it through secretstream under the
backup key straight to the target, copies only the blob files the target's pool
lacks (they are already encrypted), and writes a manifest signed by the box and
sealed under the backup key. The set is assembled in a `.partial-` directory
and renamed into place when complete; then the oldest sets beyond `keep` and
the pool files no kept set needs are removed. Nothing in clear reaches the
target except HEADER.json (format and key check). The run is an audit event.
See `backup_format` for the layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive
from strongroom.durable import fsync_dir
from strongroom.office.backup_format import (
    DB_FILE,
    FORMAT,
    HEADER_FILE,
    MANIFEST_FILE,
    POOL_DIR,
    SET_PREFIX,
    Progress,
    encrypt_stream,
    file_digest,
    header_document,
    open_manifest,
    seal_manifest,
    stream_key,
)
from strongroom.office.errors import BackupCorrupted, BackupError
from strongroom.office.leftovers import remove_files_of_dead_processes
from strongroom.proof.sth import SignedTreeHead

DEFAULT_KEEP = 7


@dataclass(frozen=True)
class BackupResult:
    set_dir: Path
    database_bytes: int
    blobs: int
    blobs_copied: int
    removed_sets: tuple[str, ...]
    tree_size: int


def _noop(_stage: str, _done: int, _total: int) -> None:
    return None


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def list_sets(target_dir: Path) -> list[Path]:
    """Complete sets, oldest first (names sort by time)."""
    if not target_dir.is_dir():
        return []
    return sorted(p for p in target_dir.iterdir() if p.is_dir() and p.name.startswith(SET_PREFIX))


def pool_path(target_dir: Path, file_name: str) -> Path:
    return target_dir / POOL_DIR / file_name[:2] / file_name


SNAPSHOT_PREFIX = ".backup-snapshot-"


def _remove_stale_snapshots(data_dir: Path) -> None:
    """A killed backup leaves its full copy of the archive behind; remove such copies.

    A stale copy would also keep records that retention has since destroyed.
    """
    # The copy and the companions SQLite may leave beside it when killed mid-write.
    for suffix in (".db", ".db-journal", ".db-wal", ".db-shm"):
        remove_files_of_dead_processes(data_dir, SNAPSHOT_PREFIX, suffix)


def _snapshot(archive: Archive) -> tuple[Path, Connection]:
    """VACUUM INTO a keyed copy inside the data dir; attach it to a reader as 'snap'."""
    _remove_stale_snapshots(archive.path.parent)
    name = f"{SNAPSHOT_PREFIX}{os.getpid()}-{secrets.token_hex(8)}.db"
    snapshot = archive.path.parent / name
    conn = archive.reader()
    try:
        # VACUUM INTO on a SQLCipher connection writes a copy under the same key.
        conn.execute("VACUUM INTO ?", (str(snapshot),))
        conn.execute("ATTACH DATABASE ? AS snap", (str(snapshot),))  # same key as main
    except BaseException:
        conn.close()
        snapshot.unlink(missing_ok=True)
        raise
    return snapshot, conn


@contextlib.contextmanager
def _target_lock(target_dir: Path) -> Iterator[None]:
    """One backup at a time per target (web UI, timer and CLI may all start one).

    The cleanup of a run removes partial sets and unreferenced pool files, which
    would break a second run copying into the same target at that moment. The
    lock is taken on the target directory itself, so nothing is added to it.
    """
    fd = os.open(target_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError("another backup to this target is running; try later") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def run(
    archive: Archive,
    target_dir: Path,
    backup_key: bytes,
    progress: Progress = _noop,
    *,
    keep: int = DEFAULT_KEEP,
    actor: str = "backup-job",
) -> BackupResult:
    """Write one complete backup set to `target_dir`; return what it holds."""
    if keep < 1:
        raise BackupError("keep at least one backup set")
    if not target_dir.is_dir():
        raise BackupError(f"the backup target {target_dir} is not mounted or does not exist")
    with _target_lock(target_dir):
        return _run_locked(archive, target_dir, backup_key, progress, keep, actor)


def _run_locked(
    archive: Archive,
    target_dir: Path,
    backup_key: bytes,
    progress: Progress,
    keep: int,
    actor: str,
) -> BackupResult:
    at_ms = int(archive.clock() * 1000)
    name = SET_PREFIX + datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = target_dir / name
    if final.exists():
        raise BackupError(f"a backup set named {name} already exists")
    partial = target_dir / f".partial-{name}"
    partial.mkdir(mode=0o700)
    snapshot, conn = _snapshot(archive)
    try:
        progress("snapshot", 1, 1)
        row = conn.execute(
            "SELECT tree_size, root_hash, timestamp_ms, signature FROM snap.tree_heads"
            " ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        head = (
            None
            if row is None
            else SignedTreeHead(int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3]))
        )
        blobs = [
            (str(f), int(s))
            for f, s in conn.execute(
                "SELECT file_name, size FROM snap.blobs WHERE destroyed_at IS NULL"
                " ORDER BY file_name"
            )
        ]
        conn.execute("DETACH DATABASE snap")
        db_size = snapshot.stat().st_size
        with snapshot.open("rb") as source, (partial / DB_FILE).open("wb") as out:
            encrypt_stream(source, out, stream_key(backup_key), db_size, progress)
            out.flush()
            os.fsync(out.fileno())
        with (partial / DB_FILE).open("rb") as sealed:
            db_digest = file_digest(sealed)
        entries, copied = _copy_blobs(archive, target_dir, blobs, progress)
        manifest = {
            "format": FORMAT,
            "set": name,
            "created_at_ms": at_ms,
            "box_public_key": bytes(archive.signing_key.verify_key).hex(),
            "schema_version": SCHEMA_VERSION,
            "tree_head": None if head is None else head.to_dict(),
            "database": {
                "file": DB_FILE,
                "size": (partial / DB_FILE).stat().st_size,
                "blake2b": db_digest,
            },
            "blobs": entries,
        }
        (partial / MANIFEST_FILE).write_bytes(
            seal_manifest(manifest, archive.signing_key, backup_key)
        )
        (partial / HEADER_FILE).write_bytes(header_document(backup_key))
        for member in (MANIFEST_FILE, HEADER_FILE):
            _fsync_file(partial / member)
        fsync_dir(partial)
        os.rename(partial, final)
        fsync_dir(target_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        conn.close()
        snapshot.unlink(missing_ok=True)
    removed = _apply_retention(target_dir, keep, backup_key, archive, progress)
    details = {
        "set": name,
        "database_bytes": db_size,
        "blobs": len(entries),
        "blobs_copied": copied,
        "removed_sets": list(removed),
    }
    archive.write(writes.audit(actor, "backup", str(target_dir), details))
    return BackupResult(
        final, db_size, len(entries), copied, removed, 0 if head is None else head.tree_size
    )


def _copy_blobs(
    archive: Archive, target_dir: Path, blobs: list[tuple[str, int]], progress: Progress
) -> tuple[list[dict[str, object]], int]:
    entries: list[dict[str, object]] = []
    copied = 0
    for done, (file_name, _size) in enumerate(blobs, start=1):
        source = archive.blobs.path_for(file_name)
        try:
            with source.open("rb") as handle:
                digest = file_digest(handle)
        except FileNotFoundError as exc:
            raise BackupError(f"blob file {file_name} is missing from the archive") from exc
        length = source.stat().st_size
        target = pool_path(target_dir, file_name)
        # Incremental: a pool file of the right size was copied by an earlier set
        # (and verified then); restore re-checks every digest anyway.
        if not (target.is_file() and target.stat().st_size == length):
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = target.with_name(f".{file_name}.tmp")
            with source.open("rb") as src, temporary.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(temporary, target)
            fsync_dir(target.parent)
            copied += 1
        entries.append({"file_name": file_name, "size": length, "blake2b": digest})
        progress("blobs", done, len(blobs))
    return entries, copied


def _apply_retention(
    target_dir: Path, keep: int, backup_key: bytes, archive: Archive, progress: Progress
) -> tuple[str, ...]:
    for stale in target_dir.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    sets = list_sets(target_dir)
    doomed = sets[:-keep]
    for old in doomed:
        shutil.rmtree(old)
    progress("cleanup", 1, 2)
    needed: set[str] = set()
    verify_key = archive.signing_key.verify_key
    for kept in list_sets(target_dir):
        try:
            manifest = open_manifest((kept / MANIFEST_FILE).read_bytes(), backup_key, verify_key)
        except (BackupCorrupted, OSError):
            # A set we cannot read might still need pool files: collect nothing.
            return tuple(p.name for p in doomed)
        needed.update(str(b["file_name"]) for b in manifest["blobs"])
    pool = target_dir / POOL_DIR
    if pool.is_dir():
        for path in pool.glob("*/*"):
            if path.name not in needed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    progress("cleanup", 2, 2)
    return tuple(p.name for p in doomed)
