"""Erasure leaves no plaintext in the database, its WAL, its free pages or the blob directory.

SQLCipher encrypts every page, so grepping the raw files proves little on its
own (it is done anyway). The stronger checks open the database with its key:
every table (FTS shadow tables included) is scanned, a plaintext copy made with
sqlcipher_export is grepped byte by byte, the FTS index must forget deleted rows
at once (secure-delete) while secure_delete zeroes whatever SQL frees, and the
WAL must be truncated. Free pages are overwritten by `archive.scrub`, checked
byte by byte in test_archive_scrub. Each check is first run before the erasure,
to show it does find the text when it is there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.archive.db import Connection
from strongroom.archive.verify import verify_archive
from strongroom.office import retention
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from test_office_support import DAY_MS, T0, Box, attach, new_box, new_phone, say

SECRET_WORD = "qqxplaintextmarkerzz"  # FTS folds case; prefix-compressed terms keep the tail
SECRET_TEXT = f"Diagnostic confidentiel {SECRET_WORD} pour M. Martin"
SECRET_BLOB = b"%PDF-1.4 ordonnance " + SECRET_WORD.encode() * 50
NEEDLE = b"plaintextmarker"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def tables_containing(conn: Connection, needle: bytes) -> list[str]:
    names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    found = []
    for name in names:
        for row in conn.execute(f'SELECT * FROM "{name}"'):
            for value in row:
                data = value.encode() if isinstance(value, str) else value
                if isinstance(data, bytes) and needle in data.lower():
                    found.append(name)
                    break
            else:
                continue
            break
    return found


def plaintext_copy(conn: Connection, path: Path) -> bytes:
    path.unlink(missing_ok=True)
    conn.execute(f"ATTACH DATABASE '{path}' AS plain KEY ''")
    conn.execute("SELECT sqlcipher_export('plain')")
    conn.execute("DETACH DATABASE plain")
    return path.read_bytes()


def raw_files(box: Box) -> list[Path]:
    files = [p for p in box.data_dir.rglob("*") if p.is_file()]
    assert box.data_dir / "archive.db" in files
    return files


def test_destroyed_content_is_gone_from_every_layer(box: Box, tmp_path: Path) -> None:
    phone = new_phone(box.archive)
    say(box, phone, SECRET_TEXT, at=T0)
    attach(box, phone, SECRET_BLOB, "ordonnance.pdf", at=T0)
    # Other, surviving records, so pages are shared and the FTS index has neighbours.
    for n in range(200):
        say(box, phone, f"message ordinaire numéro {n} quotidien", conv="autre", peer="X", at=T0)
    conn = box.archive.reader()
    # Positive controls: each check sees the secret while it exists.
    holding = set(tables_containing(conn, NEEDLE))
    assert {"records", "messages_fts_data"} <= holding
    # Stored once (schema 8): the text is read from the signed record, not kept twice.
    assert "messages" not in holding
    assert NEEDLE in plaintext_copy(conn, tmp_path / "before.db")
    blob_name = box.reader_scalar("SELECT file_name FROM blobs")
    conn.close()

    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(30, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    result = retention.run(box.archive, T0 + 31 * DAY_MS, approver="dr.martin")
    assert result.destruction.destroyed == 2

    conn = box.archive.reader()
    try:
        assert tables_containing(conn, NEEDLE) == []
        # The contact's name leaves the conversation (the retention rule naming it stays).
        assert "conversations" not in tables_containing(conn, b"m. martin")
        assert NEEDLE not in plaintext_copy(conn, tmp_path / "after.db")
        assert (
            conn.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (SECRET_WORD,)
            ).fetchone()[0]
            == 0
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'quotidien'"
            ).fetchone()[0]
            == 200
        )
        salt, destroyed = conn.execute("SELECT key_salt, destroyed_at FROM blobs").fetchone()
        assert salt is None and destroyed is not None
    finally:
        conn.close()
    wal = box.data_dir / "archive.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert not any(p.name == blob_name for p in raw_files(box))
    for path in raw_files(box):
        data = path.read_bytes()
        assert NEEDLE not in data.lower(), path
        assert SECRET_BLOB[:40] not in data, path
    report = verify_archive(box.archive.conn, box.archive.blobs, box.keys.signing_public)
    assert report.ok, report.problems
    assert report.destroyed == 2


def test_a_blob_still_used_by_a_surviving_record_is_kept(box: Box) -> None:
    phone = new_phone(box.archive)
    data = os.urandom(70_000)
    attach(box, phone, data, "scan.pdf", at=T0)
    keeper = attach(box, phone, data, "scan.pdf", conv="autre", peer="X", at=T0)
    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    result = retention.run(box.archive, T0 + 2 * DAY_MS)
    assert result.destruction.destroyed == 1
    assert box.reader_scalar("SELECT destroyed_at FROM blobs") is None
    assert box.reader_scalar("SELECT body FROM records WHERE id = ?", keeper) is not None
    report = verify_archive(box.archive.conn, box.archive.blobs, box.keys.signing_public)
    assert report.ok, report.problems
