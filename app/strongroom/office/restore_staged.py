"""Restoring a backup into a data dir that already exists (the wizard and the CLI).

The data dir is rarely empty when a restore runs (the TLS certificate, the web
job dir, maybe box.toml), and `restore.run` refuses a non-empty target. So the
set is restored into a staging directory *inside* the data dir (same file
system: the final moves are renames), and its entries (archive.db, blobs/) are
renamed into place only once `restore.run` has verified everything. Any failure
before that leaves the data dir as it was.

Staging inside the data dir, not beside it, is also what lets the `strongroom`
user restore: it owns /var/lib/strongroom but may not create entries in /var/lib.

Two restores of one data dir (the wizard's and the CLI's, or two CLIs) must never
interleave: each would remove the other's staging dir, or one could seal an identity
over the other's archive. Every restore holds `restore_lock` from the first check to
the sealed identity, and stale staging dirs are only removed under it.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from strongroom.config import BoxConfig
from strongroom.durable import fsync_dir
from strongroom.identity import Keystore
from strongroom.office import restore
from strongroom.office.backup_format import Progress
from strongroom.office.errors import BackupError

STAGING_PREFIX = ".wizard-restore-"  # the name is older than the CLI's use of it
LOCK_NAME = ".restore.lock"


class DataDirHoldsArchive(BackupError):
    """The data dir already has an entry the restored archive needs (archive.db, blobs/)."""


class SetUpMeanwhile(BackupError):
    """The box was given an identity while the restore ran."""


class RestoreRunning(BackupError):
    """Another restore (the wizard's or a CLI's) holds this data dir's restore lock."""


class HalfRestored(DataDirHoldsArchive):
    """blobs/ was moved into place but archive.db was not: a restore died in between."""


@dataclass(frozen=True)
class RestoreLock:
    """Proof that the caller holds `data_dir/.restore.lock` (see `restore_lock`)."""

    data_dir: Path


@contextmanager
def restore_lock(data_dir: Path) -> Iterator[RestoreLock]:
    """Hold the data dir's restore lock, or raise RestoreRunning at once (never wait:
    the other restore may take an hour). Released when its process dies, too.

    The lock file is removed on release (a failed restore leaves the data dir as it
    was). So a lock won on a file another holder has just unlinked is no lock: the
    file at the path must still be the one locked."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _same_file(fd, path):
                raise BlockingIOError
        except BlockingIOError:
            raise RestoreRunning(
                f"another restore is running in {data_dir} (the set-up wizard or a"
                " strongroom restore-backup); wait for it to end /"
                f" une autre restauration est en cours dans {data_dir} (l’assistant"
                " d’installation ou un strongroom restore-backup) ; attendez qu’elle se termine"
            ) from None
        try:
            yield RestoreLock(data_dir)
        finally:
            path.unlink(missing_ok=True)  # still locked: nobody else can hold this file
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)


def half_restored(config: BoxConfig) -> bool:
    """The state a restore killed between its two renames leaves (blobs/ goes first)."""
    blobs = config.blob_dir
    return (
        blobs.is_dir()
        and any(blobs.iterdir())
        and not config.archive_path.exists()
        and not Keystore.exists(config.keystore_path)
    )


def holds_archive(config: BoxConfig) -> bool:
    blobs = config.blob_dir
    return config.archive_path.exists() or (blobs.is_dir() and any(blobs.iterdir()))


def new_staging(config: BoxConfig) -> Path:
    return config.data_dir / f"{STAGING_PREFIX}{secrets.token_hex(8)}"


def remove_stale_staging(lock: RestoreLock) -> None:
    """A restore killed half-way leaves its staging dirs in the data dir (encrypted copies).
    Only under the lock: without it they could be a running restore's."""
    data_dir = lock.data_dir
    for pattern in (f"{STAGING_PREFIX}*", f".{STAGING_PREFIX}*"):
        for stale in data_dir.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def restore_to_staging(
    backup_dir: Path,
    entropy: bytes,
    staging: Path,
    config: BoxConfig,
    progress: Progress = _quiet,
    *,
    lock: RestoreLock,
) -> restore.RestoreResult:
    if lock.data_dir != config.data_dir:
        raise ValueError("the restore lock is another data dir's")
    if half_restored(config):
        blobs = config.blob_dir
        raise HalfRestored(
            f"{blobs} is there but {config.archive_path.name} is not: an earlier restore"
            f" stopped half-way. Move the half-restored blobs aside (mv {blobs}"
            f" {blobs}.half-restored) and run the restore again /"
            f" {blobs} est là mais {config.archive_path.name} non : une restauration"
            f" précédente s’est arrêtée en cours. Mettez ces blobs de côté (mv {blobs}"
            f" {blobs}.half-restored) et relancez la restauration"
        )
    if holds_archive(config):
        raise DataDirHoldsArchive(f"{config.data_dir} already holds an archive")
    remove_stale_staging(lock)
    # restore.run verifies everything (words, manifest signature, digests, the log
    # against the signed head) before it renames its work dir to `staging`.
    return restore.run(backup_dir, entropy, staging, progress)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def move_into_place(config: BoxConfig, staging: Path) -> None:
    """Rename the restored entries into the data dir; refuse before moving anything."""
    if Keystore.exists(config.keystore_path):
        raise SetUpMeanwhile("the box was given an identity while the restore ran")
    entries = sorted(staging.iterdir(), key=lambda p: p.name == "archive.db")  # database last
    for entry in entries:
        target = config.data_dir / entry.name
        if (target.exists() or target.is_symlink()) and not _is_empty_dir(target):
            raise DataDirHoldsArchive(f"{target} already exists; a restore never overwrites")
    for entry in entries:
        target = config.data_dir / entry.name
        if _is_empty_dir(target):
            target.rmdir()
        os.rename(entry, target)
    fsync_dir(config.data_dir)
    staging.rmdir()
