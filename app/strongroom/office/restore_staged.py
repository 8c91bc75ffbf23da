"""Restoring a backup into a data dir that already exists (the wizard and the CLI).

The data dir is rarely empty when a restore runs (the TLS certificate, the web
job dir, maybe box.toml), and `restore.run` refuses a non-empty target. So the
set is restored into a staging directory *inside* the data dir (same file
system: the final moves are renames), and its entries (archive.db, blobs/) are
renamed into place only once `restore.run` has verified everything. Any failure
before that leaves the data dir as it was.

Staging inside the data dir, not beside it, is also what lets the `strongroom`
user restore: it owns /var/lib/strongroom but may not create entries in /var/lib.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from strongroom.config import BoxConfig
from strongroom.durable import fsync_dir
from strongroom.identity import Keystore
from strongroom.office import restore
from strongroom.office.backup_format import Progress
from strongroom.office.errors import BackupError

STAGING_PREFIX = ".wizard-restore-"  # the name is older than the CLI's use of it


class DataDirHoldsArchive(BackupError):
    """The data dir already has an entry the restored archive needs (archive.db, blobs/)."""


class SetUpMeanwhile(BackupError):
    """The box was given an identity while the restore ran."""


def holds_archive(config: BoxConfig) -> bool:
    blobs = config.blob_dir
    return config.archive_path.exists() or (blobs.is_dir() and any(blobs.iterdir()))


def new_staging(config: BoxConfig) -> Path:
    return config.data_dir / f"{STAGING_PREFIX}{secrets.token_hex(8)}"


def remove_stale_staging(data_dir: Path) -> None:
    """A restore killed half-way leaves its staging dirs in the data dir (encrypted copies)."""
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
) -> restore.RestoreResult:
    if holds_archive(config):
        raise DataDirHoldsArchive(f"{config.data_dir} already holds an archive")
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_stale_staging(config.data_dir)
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
