"""A destruction overwrites the free pages and truncates the WAL, at a cost that
follows what it destroys, not the archive's size (issue #20).

The free-page wipe is checked byte by byte on an unencrypted SQLite file (with
SQLCipher every page is ciphertext, so only the mechanism can be seen in the raw
bytes); on a real box, a destruction must no longer rewrite the whole file (the
VACUUM it replaced wrote it twice, and held a copy of it in RAM).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.archive.scrub import (
    pending_marker,
    pending_since_ms,
    truncate_wal,
    wipe_free_pages,
)
from strongroom.office import retention
from strongroom.office.erasure import finish_pending_scrub
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from test_office_support import DAY_MS, T0, Box, new_box, new_phone, say

SECRET = b"zzsecretfreepagemarker"


def _plain_db_with_secret_on_free_pages(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA secure_delete = OFF")  # as FTS merges free pages: not zeroed
    conn.execute("CREATE TABLE kept (x BLOB)")
    conn.execute("CREATE TABLE gone (x BLOB)")
    for n in range(300):
        conn.execute("INSERT INTO gone VALUES (?)", (SECRET * 100 + bytes([n % 256]),))
        conn.execute("INSERT INTO kept VALUES (?)", (b"ordinary" * 50,))
    conn.execute("DROP TABLE gone")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def test_wipe_overwrites_every_free_page_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    conn = _plain_db_with_secret_on_free_pages(path)
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert free > 100
    # Positive control: the dropped rows are still on the free pages.
    assert SECRET in path.read_bytes()
    size = path.stat().st_size

    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("BEGIN IMMEDIATE")
    assert wipe_free_pages(conn) == free
    conn.execute("COMMIT")
    truncate_wal(conn)

    assert SECRET not in path.read_bytes()
    assert (
        not (tmp_path / "plain.db-wal").exists() or (tmp_path / "plain.db-wal").stat().st_size == 0
    )
    # Only the free pages were used: the file did not grow by a copy of itself.
    assert path.stat().st_size <= size + 8 * 4096
    assert conn.execute("SELECT count(*) FROM kept").fetchone()[0] == 300
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'scrub_fill'").fetchone()[0]
        == 0
    )


def test_wipe_refuses_without_zeroing_or_outside_a_transaction(tmp_path: Path) -> None:
    conn = _plain_db_with_secret_on_free_pages(tmp_path / "plain.db")
    with pytest.raises(Exception, match="inside a write transaction"):
        wipe_free_pages(conn)
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(Exception, match="secure_delete"):
        wipe_free_pages(conn)
    conn.execute("ROLLBACK")


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def _written(pid: str = "self") -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def test_a_destruction_does_not_rewrite_the_whole_archive(box: Box) -> None:
    phone = new_phone(box.archive)
    say(box, phone, "Diagnostic confidentiel à détruire", at=T0)
    # Many records that stay: the archive is far bigger than what is destroyed.
    for n in range(3000):
        say(
            box,
            phone,
            f"message ordinaire {n} " + "texte " * 120,
            conv="autre",
            peer="X",
            at=T0 + DAY_MS * 40,
        )
    box.archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (box.data_dir / "archive.db").stat().st_size
    assert size > 4 * 1024 * 1024

    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(30, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    before = _written()
    result = retention.run(box.archive, T0 + 31 * DAY_MS, approver="dr.martin")
    written = _written() - before

    assert result.destruction.destroyed == 1
    # VACUUM wrote the whole file into the WAL and back (> 2x its size); the wipe
    # writes the destroyed pages, the free pages and the certificate's rows.
    assert written < size / 4, (written, size)
    wal = box.data_dir / "archive.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    conn = box.archive.reader()
    try:
        hits = conn.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'ordinaire'"
        ).fetchone()[0]
        assert hits == 3000
        assert (
            conn.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'confidentiel'"
            ).fetchone()[0]
            == 0
        )
    finally:
        conn.close()


def test_a_reader_holding_the_wal_leaves_the_scrub_pending_until_it_lets_go(box: Box) -> None:
    """A long read (an export, a backup, a phone's restore) keeps the checkpoint from
    reaching the file: the destruction is committed, the scrub is marked pending on
    disk, and the box finishes it once the reader is done."""
    phone = new_phone(box.archive)
    say(box, phone, "Diagnostic confidentiel à détruire", at=T0)
    for n in range(50):
        say(box, phone, f"message ordinaire {n}", conv="autre", peer="X", at=T0 + DAY_MS * 40)
    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(30, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    marker = pending_marker(box.archive.path)
    wal = box.data_dir / "archive.db-wal"

    reader = box.archive.reader()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM records").fetchone()  # holds its snapshot
    try:
        t0 = time.monotonic()
        result = retention.run(box.archive, T0 + 31 * DAY_MS, approver="dr.martin")
        assert time.monotonic() - t0 < 20  # a few tries, not the 30 s busy timeout each
        assert result.destruction.destroyed == 1
        assert marker.exists()
        assert wal.stat().st_size > 0
        # Left pending an hour ago: a failed retry keeps that "since", not its own time.
        an_hour_ago = int(time.time()) - 3600
        os.utime(marker, (an_hour_ago, an_hour_ago))
        assert finish_pending_scrub(box.archive) is False  # still held
        assert marker.exists()
        assert pending_since_ms(box.archive.path) == an_hour_ago * 1000
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    assert finish_pending_scrub(box.archive) is True
    assert not marker.exists()
    assert not wal.exists() or wal.stat().st_size == 0
    assert finish_pending_scrub(box.archive) is None  # nothing pending any more
