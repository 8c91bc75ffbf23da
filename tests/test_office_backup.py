"""Encrypted backups and restore: the restore drill, nothing in clear on the target,
incremental blobs, retention of sets, and clear errors that leave the new box untouched."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_helpers import SELECT_TEXTS
from strongroom.archive.verify import verify_archive
from strongroom.office import backup, restore, retention
from strongroom.office.backup_format import decrypt_stream, encrypt_stream, stream_key
from strongroom.office.errors import (
    BackupCorrupted,
    BackupError,
    NotABackup,
    RestoreTargetNotEmpty,
    WrongWords,
)
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.proof.merkle import verify_consistency
from test_office_support import DAY_MS, T0, Box, attach, new_box, new_phone, open_box, say

SECRET = "Compte rendu opératoire confidentiel zyxwvplaintext"
BLOB = b"IRM du genou " + os.urandom(200_000)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    phone = new_phone(b.archive)
    say(b, phone, SECRET, at=T0)
    attach(b, phone, BLOB, "irm.pdf", at=T0 + 1)
    yield b
    b.close()


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "usb"
    path.mkdir()
    return path


def back_up(box: Box, target: Path, **kwargs: int) -> backup.BackupResult:
    box.clock.advance(1)  # each set gets its own timestamped name
    return backup.run(box.archive, target, box.keys.backup_key, **kwargs)  # type: ignore[arg-type]


def test_restore_drill(box: Box, target: Path, tmp_path: Path) -> None:
    stages: list[str] = []
    result = backup.run(box.archive, target, box.keys.backup_key, lambda s, d, t: stages.append(s))
    assert {"snapshot", "database", "blobs", "cleanup"} <= set(stages)
    # The snapshot's log; the box's own log has one more leaf: the backup's audit event.
    assert box.archive.log.size == result.tree_size + 1
    snapshot_root = box.archive.log.root(result.tree_size)
    records = box.reader_scalar("SELECT count(*) FROM records")
    entropy = box.entropy
    box.close()
    shutil.rmtree(box.data_dir)  # the box is gone

    restored_dir = tmp_path / "new-box"
    done = restore.run(target, entropy, restored_dir)
    assert done.records == records and done.blobs == 1
    assert done.tree_size == result.tree_size

    again = open_box(restored_dir, entropy, now_ms=T0 + DAY_MS)
    try:
        report = verify_archive(again.archive.conn, again.archive.blobs, again.keys.signing_public)
        assert report.ok, report.problems
        text = again.reader_scalar(SELECT_TEXTS + " WHERE m.text_at IS NOT NULL")
        assert text == SECRET
        file_name, salt, size = again.archive.conn.execute(
            "SELECT file_name, key_salt, size FROM blobs"
        ).fetchone()
        from strongroom.archive.blobs import BlobLocation

        data = b"".join(again.archive.blobs.read_chunks(BlobLocation(file_name, salt), size))
        assert data == BLOB
        # The log continues: same leaves, then new ones, provably append-only.
        restored_size = again.archive.log.size
        assert restored_size == result.tree_size
        say(again, new_phone(again.archive, owner="dr.neuf"), "après restauration", at=T0 + DAY_MS)
        new_size = again.archive.log.size
        assert new_size > restored_size
        proof = again.archive.consistency_proof(restored_size, new_size)
        assert verify_consistency(
            restored_size,
            new_size,
            again.archive.log.root(restored_size),
            again.archive.log.root(),
            proof,
        )
        # And the restored prefix is the old box's log, leaf for leaf.
        assert again.archive.log.root(restored_size) == snapshot_root
        head = again.archive.latest_tree_head()
        assert head is not None and head.tree_size == new_size
    finally:
        again.close()


def test_nothing_in_clear_reaches_the_target(box: Box, target: Path) -> None:
    back_up(box, target)
    files = [p for p in target.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        data = path.read_bytes()
        assert b"zyxwvplaintext" not in data, path
        assert BLOB[:13] not in data, path
        assert not data.startswith(b"SQLite format 3"), path
    assert not list(box.data_dir.glob(".backup-snapshot-*"))


def test_blobs_are_copied_incrementally(box: Box, target: Path) -> None:
    first = back_up(box, target)
    assert (first.blobs, first.blobs_copied) == (1, 1)
    second = back_up(box, target)
    assert (second.blobs, second.blobs_copied) == (1, 0)
    attach(box, new_phone(box.archive, owner="x"), b"nouveau", "b.txt", conv="c2", peer="P")
    third = back_up(box, target)
    assert (third.blobs, third.blobs_copied) == (2, 1)


def test_old_sets_and_unneeded_pool_files_are_removed(box: Box, target: Path) -> None:
    back_up(box, target, keep=2)
    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    retention.run(box.archive, T0 + 2 * DAY_MS)
    back_up(box, target, keep=2)
    assert len(list((target / "pool").glob("*/*"))) == 1  # the first set still needs it
    third = back_up(box, target, keep=2)
    assert len(third.removed_sets) == 1
    assert len(backup.list_sets(target)) == 2
    assert list((target / "pool").glob("*/*")) == []  # destroyed everywhere now


def test_wrong_words_are_refused_and_nothing_is_written(
    box: Box, target: Path, tmp_path: Path
) -> None:
    back_up(box, target)
    new_dir = tmp_path / "new-box"
    with pytest.raises(WrongWords, match="24 words"):
        restore.run(target, os.urandom(32), new_dir)
    assert not new_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []


def corrupt(path: Path, *, truncate: bool) -> None:
    data = path.read_bytes()
    if truncate:
        path.write_bytes(data[: len(data) // 2])
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])


@pytest.mark.parametrize("truncate", [True, False], ids=["truncated", "flipped"])
@pytest.mark.parametrize("victim", ["database", "blob", "manifest"])
def test_damaged_backups_are_named_and_leave_the_new_box_untouched(
    box: Box, target: Path, tmp_path: Path, victim: str, truncate: bool
) -> None:
    result = back_up(box, target)
    path = {
        "database": result.set_dir / "archive.db.enc",
        "blob": next((target / "pool").glob("*/*")),
        "manifest": result.set_dir / "manifest.enc",
    }[victim]
    corrupt(path, truncate=truncate)
    new_dir = tmp_path / "new-box"
    new_dir.mkdir()  # an empty directory prepared by the admin is fine, and stays empty
    with pytest.raises(BackupCorrupted) as error:
        restore.run(target, box.entropy, new_dir)
    assert path.name in str(error.value)
    assert list(new_dir.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if "restoring" in p.name] == []


def test_missing_backup_and_occupied_target(box: Box, target: Path, tmp_path: Path) -> None:
    with pytest.raises(NotABackup):
        restore.run(target, box.entropy, tmp_path / "x")
    with pytest.raises(BackupError, match="not mounted"):
        backup.run(box.archive, tmp_path / "unplugged", box.keys.backup_key)
    back_up(box, target)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("précieux")
    with pytest.raises(RestoreTargetNotEmpty):
        restore.run(target, box.entropy, occupied)
    assert (occupied / "keep.txt").read_text() == "précieux"


def test_stream_detects_truncation_reordering_and_trailing_bytes() -> None:
    key = stream_key(os.urandom(32))
    plain = os.urandom(200_000)  # four chunks
    sealed = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), sealed, key, len(plain), lambda *_: None)
    data = sealed.getvalue()
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(data), out, key, "db")
    assert out.getvalue() == plain
    frame = 4 + 64 * 1024 + 17
    header = 16 + 24
    cut_at_chunk = data[: header + 2 * frame]  # whole chunks, but no FINAL
    for bad in (cut_at_chunk, data + b"\x00", data[:-1]):
        with pytest.raises(BackupCorrupted):
            decrypt_stream(io.BytesIO(bad), io.BytesIO(), key, "db")
    swapped = (
        data[:header] + data[header + frame : header + 2 * frame] + data[header : header + frame]
    )
    with pytest.raises(BackupCorrupted):
        decrypt_stream(io.BytesIO(swapped + data[header + 2 * frame :]), io.BytesIO(), key, "db")


def test_a_second_backup_to_the_same_target_waits_its_turn(box: Box, target: Path) -> None:
    # The web UI, the nightly timer and the CLI may start a backup at the same
    # moment: the second is refused clearly while the first holds the target,
    # instead of both pruning each other's partial set and pool files.
    second: list[BaseException] = []

    def during_first(stage: str, _done: int, _total: int) -> None:
        if stage == "blobs" and not second:
            try:
                back_up(box, target)
            except BackupError as exc:
                second.append(exc)

    first = backup.run(box.archive, target, box.keys.backup_key, during_first)
    assert len(second) == 1 and "another backup" in str(second[0])
    assert [s.name for s in backup.list_sets(target)] == [first.set_dir.name]
    again = back_up(box, target)  # once the first has finished, backups work again
    assert again.set_dir.exists()
