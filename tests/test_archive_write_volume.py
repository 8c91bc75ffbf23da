"""What a group commit writes to the card (issue #20 item 1: SD-card endurance).

Each group commit appends its pages to the WAL; a checkpoint later copies the
newest version of each page into the database file. Checkpointing at SQLite's
default of 1,000 WAL pages copied every commit's pages right after it, so the
pages each commit rewrites (table and index tails, FTS segments, the log's
frontier) were written twice per commit. The box checkpoints every
db.WAL_AUTOCHECKPOINT_PAGES instead: a page rewritten by many commits reaches
the file once. And the pages FTS5 frees while merging segments are no longer
zeroed on the spot (one more write each), while every other delete still is.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import assert_index_matches_text, message, new_phone, open_with_keys
from strongroom.archive import db, schema, writes
from strongroom.archive.store import Archive

PAGE = 4096
# Group commits of the merge test: more than 8 x 8 segments (two merge levels at 8 per
# merge), fewer than 16 x 16 (one at 16).
SEGMENTS = 128
# The migration that merges FTS5 segments 16 at a time, found by what it does.
BEFORE = next(n for n, sql in enumerate(schema.MIGRATIONS) if "'crisismerge', 64" in sql)


def wal_pages(wal: Path) -> list[int]:
    """Page numbers of the WAL's valid frames since its last restart, in order."""
    data = wal.read_bytes()
    if len(data) < 32:
        return []
    salts = data[16:24]
    pages = []
    offset = 32
    while offset + 24 + PAGE <= len(data):
        if data[offset + 8 : offset + 16] != salts:
            break  # a frame left over from before the WAL restarted
        pages.append(struct.unpack(">I", data[offset : offset + 4])[0])
        offset += 24 + PAGE
    return pages


def ingest(archive: Archive, key: SigningKey, device: int, batches: int, per_batch: int) -> None:
    text = "Compte rendu de la réunion, pièces du dossier à verser. " * 18  # ~1 KiB
    for b in range(batches):
        archive.write_batch(
            [
                writes.store_record(
                    message(key, f"{text} n°{b}-{i}", conv=f"dossier-{i % 40}"),
                    device,
                    "maitre.durand",
                )
                for i in range(per_batch)
            ]
        )


def test_commits_share_a_checkpoint_instead_of_one_each(archive: Archive) -> None:
    device, key = new_phone(archive)
    ingest(archive, key, device, batches=12, per_batch=250)
    frames = wal_pages(Path(f"{archive.path}-wal"))
    # Well past SQLite's default (1,000 pages), all still in the WAL: no commit
    # paid for a checkpoint of its own pages.
    assert 2_000 < len(frames) < db.WAL_AUTOCHECKPOINT_PAGES
    # ...and many of them are rewrites of pages an earlier commit wrote, which
    # the one checkpoint to come writes to the database file once.
    assert len(set(frames)) < 0.8 * len(frames)
    size_before = archive.path.stat().st_size
    wal_frames, copied = archive.checkpoint()
    assert wal_frames == copied == len(frames)
    assert archive.path.stat().st_size > size_before
    count = archive.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 12 * 250


def test_a_busy_hour_stays_in_the_wal_until_one_checkpoint(archive: Archive) -> None:
    """Past 10,000 WAL pages (the interval before, ~40 MiB) nothing is copied yet:
    at 5M records a checkpoint every 10,000 pages wrote each conversation's index
    leaf and the FTS segments into the file four times as often (docs/benchmarks.md)."""
    device, key = new_phone(archive)
    frames: list[int] = []
    batches = 0
    while len(frames) <= 12_000:
        ingest(archive, key, device, batches=1, per_batch=250)
        batches += 1
        now = wal_pages(Path(f"{archive.path}-wal"))
        # A checkpoint restarts the WAL: its frames would start again from none.
        assert len(now) > len(frames), f"checkpointed after {len(frames)} WAL pages"
        frames = now
    assert len(frames) < db.WAL_AUTOCHECKPOINT_PAGES
    # The checkpoint to come writes each page once, however many commits wrote it.
    distinct = len(set(frames))
    assert distinct < 0.8 * len(frames)
    wal_frames, copied = archive.checkpoint()
    assert wal_frames == copied == len(frames)
    count = archive.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == batches * 250


def test_secure_delete_is_on_again_after_a_batch(archive: Archive) -> None:
    """Only the FTS feed runs with secure_delete FAST; every other delete zeroes."""
    device, key = new_phone(archive)
    ingest(archive, key, device, batches=2, per_batch=20)
    assert archive.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert archive.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == (
        db.WAL_AUTOCHECKPOINT_PAGES
    )


def _fts_frames(archive: Archive, key: SigningKey, device: int) -> int:
    """WAL pages written by SEGMENTS group commits (one FTS5 segment each) of messages
    with many words of their own, so the index is most of what is written."""
    archive.checkpoint()
    for b in range(SEGMENTS):
        archive.write_batch(
            [
                writes.store_record(
                    message(
                        key,
                        "réunion " + " ".join(f"pièce{b}n{i}m{k}" for k in range(80)),
                        conv=f"dossier-{i}",
                    ),
                    device,
                    "maitre.durand",
                )
                for i in range(16)
            ]
        )
    return len(wal_pages(Path(f"{archive.path}-wal")))


def _frames_with(path: Path, keys: dict[str, bytes], settings: tuple[tuple[str, int], ...]) -> int:
    archive = open_with_keys(path, keys)
    try:
        for name, value in settings:
            archive.conn.execute(
                "INSERT INTO messages_fts(messages_fts, rank) VALUES (?, ?)", (name, value)
            )
        device, key = new_phone(archive)
        return _fts_frames(archive, key, device)
    finally:
        archive.close()


def test_full_text_segments_are_merged_sixteen_at_a_time(
    archive: Archive, tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    """FTS5 rewrote every index entry once per merge level; fewer levels, fewer writes."""
    config = dict(archive.conn.execute("SELECT k, v FROM messages_fts_config").fetchall())
    assert config.get("automerge") == 16
    assert config.get("crisismerge") == 64
    assert config.get("usermerge") == 8  # the idle merge's width (archive/fts_merge.py)
    device, key = new_phone(archive)
    ours = _fts_frames(archive, key, device)
    # The same ingest with FTS5's default (merge 4 segments at a time), with schema
    # 8's 8 at a time, and with no merging at all: what the commits write besides
    # the merges.
    defaults = _frames_with(tmp_path / "defaults", archive_keys, (("automerge", 4),))
    eight = _frames_with(tmp_path / "eight", archive_keys, (("automerge", 8), ("crisismerge", 16)))
    unmerged = _frames_with(
        tmp_path / "unmerged", archive_keys, (("automerge", 0), ("crisismerge", 10_000))
    )
    assert unmerged < ours < eight < defaults, (unmerged, ours, eight, defaults)
    # 128 segments: three merge levels at 4 per merge, two at 8 (the second under way
    # at the end: FTS5 merges a little per commit), one at 16 (measured: 0.85 of 8's).
    assert ours - unmerged < 0.9 * (eight - unmerged), (ours, eight, unmerged)
    # Nothing lost: every message is found, and the index is whole.
    hits = archive.conn.execute(
        "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'reunion'"
    ).fetchone()[0]
    assert hits == SEGMENTS * 16
    archive.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")


def _index_print(archive: Archive) -> tuple[int, int, int]:
    """The FTS5 index's own pages: how many, their bytes, and a sum over their ids."""
    row = archive.conn.execute(
        "SELECT count(*), sum(length(block)), sum(id % 1000003) FROM messages_fts_data"
    ).fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def test_an_archive_from_before_merges_sixteen_at_a_time_without_a_rewrite(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    """Migration 12 changes which merges come next, nothing already indexed: the
    upgrade of a 5M archive costs three config rows, and every message is found after."""
    data = tmp_path / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", schema.MIGRATIONS[:BEFORE])
        patch.setattr(db, "SCHEMA_VERSION", BEFORE)
        old = open_with_keys(data, archive_keys)
        try:
            assert db.schema_version(old.conn) == BEFORE
            device, key = new_phone(old)
            ingest(old, key, device, batches=10, per_batch=20)
            config = dict(old.conn.execute("SELECT k, v FROM messages_fts_config").fetchall())
            assert config.get("automerge") == 8 and "crisismerge" not in config
            index_before = _index_print(old)
        finally:
            old.close()
    archive = open_with_keys(data, archive_keys)
    try:
        assert db.schema_version(archive.conn) == schema.SCHEMA_VERSION
        config = dict(archive.conn.execute("SELECT k, v FROM messages_fts_config").fetchall())
        assert config.get("automerge") == 16 and config.get("crisismerge") == 64
        assert config.get("usermerge") == 8
        assert _index_print(archive) == index_before
        archive.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        # Written after the upgrade, found with those from before.
        device, key = new_phone(archive)
        ingest(archive, key, device, batches=2, per_batch=20)
        hits = archive.conn.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'reunion'"
        ).fetchone()[0]
        assert hits == 12 * 20
        assert_index_matches_text(archive.conn)
    finally:
        archive.close()
