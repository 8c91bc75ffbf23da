"""Restore a backup set onto a new box from the 24 words.

Order of checks, each with its own error: the set exists (NotABackup), the
words' key check matches the set's (WrongWords), the manifest decrypts and is
signed by the identity the words derive (BackupCorrupted / WrongWords), every
file matches its digest and the database stream authenticates to its final
chunk (BackupCorrupted naming the file), and the restored archive passes
`verify_archive` with the same signed tree head. Everything is written into a
temporary directory beside the target and renamed into place only when all of
that passed: on any failure the new data directory is left untouched.

`describe` opens a set's signed manifest without restoring anything, so the
wizard and the CLI can say what the backup holds before the admin confirms:
a backup's log ends at its signed head, and phones that saw a longer log since
refuse the restored box until paired again (protocol.md §6.3). The restored
archive keeps that head in the `restored_from` setting for the dashboard.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nacl.hashlib

from strongroom.archive.store import Archive, Txn
from strongroom.archive.verify_runs import run_verification
from strongroom.identity import BoxKeys, derive_box_keys
from strongroom.office.backup import list_sets, pool_path
from strongroom.office.backup_format import (
    DB_FILE,
    FORMAT,
    HEADER_FILE,
    MANIFEST_FILE,
    Progress,
    decrypt_stream,
    key_check,
    open_manifest,
    stream_key,
)
from strongroom.office.errors import BackupCorrupted, NotABackup, RestoreTargetNotEmpty, WrongWords
from strongroom.proof.sth import SignedTreeHead

# The settings key a restored archive keeps: which backup, and where its log ended.
RESTORED_FROM = "restored_from"


@dataclass(frozen=True)
class RestoreResult:
    data_dir: Path
    set_name: str
    tree_size: int
    records: int
    blobs: int


@dataclass(frozen=True)
class BackupSummary:
    """What a backup set holds, read from its signed manifest (nothing restored)."""

    set_name: str
    created_at_ms: int
    tree_size: int  # the size of the log at its signed head (0: an empty log)
    head_at_ms: int | None  # when that head was signed
    blobs: int

    def as_json(self) -> dict[str, object]:
        return {
            "set": self.set_name,
            "created_at_ms": self.created_at_ms,
            "tree_size": self.tree_size,
            "head_at_ms": self.head_at_ms,
            "blobs": self.blobs,
        }


def _noop(_stage: str, _done: int, _total: int) -> None:
    return None


def find_set(backup_dir: Path) -> Path:
    """A set directory itself, or the newest set in a backup target."""
    if (backup_dir / HEADER_FILE).is_file():
        return backup_dir
    sets = list_sets(backup_dir)
    if not sets:
        raise NotABackup(f"{backup_dir} holds no Strongroom backup set")
    return sets[-1]


def _check_header(set_dir: Path, backup_key: bytes) -> None:
    try:
        header = json.loads((set_dir / HEADER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotABackup(f"{set_dir.name}/{HEADER_FILE} is unreadable") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise NotABackup(f"{set_dir.name} is not a {FORMAT} backup set")
    if header.get("key_check") != key_check(backup_key):
        raise WrongWords(
            "these 24 words do not open this backup: it was made by another box"
            " (or a word is wrong)"
        )


def _digest_copy(source: Path, target: Path, expected: str, label: str) -> None:
    digest = nacl.hashlib.blake2b(digest_size=32)
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except FileNotFoundError as exc:
        raise BackupCorrupted(f"{label} is missing") from exc
    if digest.hexdigest() != expected:
        raise BackupCorrupted(f"{label} is corrupted (its digest differs from the manifest)")


def _check_digest(path: Path, expected: str, label: str) -> None:
    digest = nacl.hashlib.blake2b(digest_size=32)
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise BackupCorrupted(f"{label} is missing") from exc
    if digest.hexdigest() != expected:
        raise BackupCorrupted(f"{label} is corrupted or truncated (digest differs)")


def _open_set(backup_dir: Path, keys: BoxKeys) -> tuple[Path, dict[str, object]]:
    """The set to restore and its manifest, checked against the words' keys."""
    set_dir = find_set(backup_dir)
    _check_header(set_dir, keys.backup_key)
    try:
        sealed = (set_dir / MANIFEST_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise BackupCorrupted(f"{set_dir.name}/{MANIFEST_FILE} is missing") from exc
    manifest = open_manifest(sealed, keys.backup_key, keys.signing_key.verify_key)
    if manifest.get("box_public_key") != keys.signing_public.hex():
        raise WrongWords("this backup belongs to another box identity")
    return set_dir, manifest


def _summary(set_dir: Path, manifest: dict[str, object]) -> BackupSummary:
    head_doc = manifest.get("tree_head")
    head = SignedTreeHead.from_dict(head_doc) if isinstance(head_doc, dict) else None
    blobs = manifest.get("blobs")
    created = manifest.get("created_at_ms")
    return BackupSummary(
        set_name=set_dir.name,
        created_at_ms=int(created) if isinstance(created, int) else 0,
        tree_size=0 if head is None else head.tree_size,
        head_at_ms=None if head is None else head.timestamp_ms,
        blobs=len(blobs) if isinstance(blobs, list) else 0,
    )


def describe(backup_dir: Path, entropy: bytes) -> BackupSummary:
    """What the set `run` would restore holds (same checks of words and signature)."""
    set_dir, manifest = _open_set(backup_dir, derive_box_keys(entropy))
    return _summary(set_dir, manifest)


def run(
    backup_dir: Path, entropy: bytes, new_data_dir: Path, progress: Progress = _noop
) -> RestoreResult:
    """Restore the newest set in `backup_dir` (or that set) into `new_data_dir`."""
    keys = derive_box_keys(entropy)
    set_dir, manifest = _open_set(backup_dir, keys)
    target_dir = set_dir.parent
    if new_data_dir.exists() and any(new_data_dir.iterdir()):
        raise RestoreTargetNotEmpty(f"{new_data_dir} is not empty; restore never overwrites")
    new_data_dir.parent.mkdir(parents=True, exist_ok=True)
    work = new_data_dir.parent / f".{new_data_dir.name}.restoring-{secrets.token_hex(6)}"
    work.mkdir(mode=0o700)
    try:
        result = _restore_into(work, set_dir, target_dir, manifest, keys, progress)
        if new_data_dir.exists():
            new_data_dir.rmdir()
        os.rename(work, new_data_dir)
        fd = os.open(new_data_dir.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return RestoreResult(new_data_dir, set_dir.name, *result)


def _restore_into(
    work: Path,
    set_dir: Path,
    target_dir: Path,
    manifest: dict[str, object],
    keys: BoxKeys,
    progress: Progress,
) -> tuple[int, int, int]:
    database = manifest["database"]
    assert isinstance(database, dict)
    db_label = f"{set_dir.name}/{DB_FILE}"
    _check_digest(set_dir / DB_FILE, str(database["blake2b"]), db_label)
    with (set_dir / DB_FILE).open("rb") as source, (work / "archive.db").open("wb") as out:
        decrypt_stream(source, out, stream_key(keys.backup_key), db_label)
        out.flush()
        os.fsync(out.fileno())
    progress("database", 1, 1)
    blobs = manifest["blobs"]
    assert isinstance(blobs, list)
    for done, entry in enumerate(blobs, start=1):
        file_name = str(entry["file_name"])
        target = work / "blobs" / file_name[:2] / file_name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pool_file = pool_path(target_dir, file_name)
        label = f"pool/{file_name[:2]}/{file_name}"
        _digest_copy(pool_file, target, str(entry["blake2b"]), label)
        progress("blobs", done, len(blobs))
    archive = Archive.open(work, keys.archive_key, keys.blob_key, keys.signing_key)
    try:
        # Kept in the restored archive's `verifications`: its Integrity page then
        # says when and how it was checked, and the next incremental run starts here.
        report, _ = run_verification(archive, "full", purpose="restore")
        if not report.ok:
            raise BackupCorrupted(
                "the restored archive does not verify: " + "; ".join(report.problems[:5])
            )
        expected = manifest.get("tree_head")
        head = archive.latest_tree_head()
        if expected is not None and (head is None or head != SignedTreeHead.from_dict(expected)):
            raise BackupCorrupted("the restored log does not end at the manifest's tree head")
        records = int(archive.conn.execute("SELECT count(*) FROM records").fetchone()[0])
        # No log leaf: the restored log must still end at the backup's head.
        archive.write(_remember_restore(_summary(set_dir, manifest)))
        # Leave the WAL folded into the main file before the directory moves.
        archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        archive.close()
    progress("verify", 1, 1)
    return (0 if head is None else head.tree_size), records, len(blobs)


def _remember_restore(summary: BackupSummary) -> Callable[[Txn], None]:
    value = json.dumps({**summary.as_json(), "restored_at_ms": int(time.time() * 1000)})

    def op(txn: Txn) -> None:
        txn.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (RESTORED_FROM, value),
        )

    return op
