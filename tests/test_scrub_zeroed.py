"""A destruction wipes the free pages once, not every night (issue #20, destruction's re-wipe).

Every destruction used to overwrite every free page with zeros, even pages it had
zeroed the night before (~25,000 at 5M after migration 10: ~196 MiB written per
night). The FTS feed now zeroes the segment pages its merges free, as every other
write does, so after one full wipe (noted in `settings`, at a schema no release
that merged without zeroing can open) a destruction leaves the free pages alone,
and a destroyed message is still nowhere in the file's bytes.

SQLCipher encrypts every page, so the bytes are read on an unencrypted SQLite
file written by the same code (SQLCipher opened without a key writes plain
SQLite); tests/test_office_erasure.py checks the encrypted archive through its key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import new_phone, open_with_keys
from strongroom.archive import db, scrub, writes
from strongroom.archive.db import Connection
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive
from strongroom.office.erasure import erase_in_txn, scrub_storage
from support.records import signed_message

SECRET_WORD = "qqxplaintextmarkerzz"  # FTS5 prefix-compresses terms: the tail is searched
NEEDLE = b"plaintextmarker"
OWNER = "maitre.durand"


@pytest.fixture
def plain(
    tmp_path: Path, archive_keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Archive]:
    # SQLCipher with no key writes a plain SQLite file (same library, same FTS5).
    monkeypatch.setattr(db, "_key_pragma", lambda key: "SELECT 1")
    archive = open_with_keys(tmp_path / "data", archive_keys)
    yield archive
    archive.close()


def long_text(n: int, words: str) -> str:
    """A message of ~300 words of its own: its FTS5 segment fills whole pages, which a
    merge frees (short messages share pages with others, merged in place)."""
    return words + " " + " ".join(f"mot{n}x{i}" for i in range(300))


def write(archive: Archive, key: SigningKey, phone: int, texts: list[str]) -> list[int]:
    """One batch of messages; their records' row ids."""
    start = archive.conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()[0]
    ops = [
        writes.store_record(
            signed_message(key, text, conv="client-a", at=1_760_000_000_000 + start + n),
            phone,
            OWNER,
        )
        for n, text in enumerate(texts)
    ]
    archive.write_batch(ops)
    rows = archive.conn.execute("SELECT id FROM records WHERE id > ? ORDER BY id", (start,))
    return [int(r[0]) for r in rows]


def destroy(archive: Archive, row_ids: list[int]) -> list[str]:
    """Destroy the records as the daily job does (erasure, then the WAL scrub); the SQL
    the erasure ran."""
    ran: list[str] = []
    archive.conn.set_trace_callback(ran.append)
    try:
        archive.write(lambda txn: erase_in_txn(txn, row_ids))
    finally:
        archive.conn.set_trace_callback(None)
    assert scrub_storage(archive)
    return ran


def wiped(ran: list[str]) -> bool:
    return any(sql.startswith("CREATE TABLE scrub_fill") for sql in ran)


def test_after_one_wipe_a_destruction_leaves_zeroed_free_pages_and_no_text(
    plain: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scrub, "ZEROED_FREES_FROM_SCHEMA", SCHEMA_VERSION)
    phone, key = new_phone(plain, OWNER)
    file = plain.path
    # The first destruction wipes every free page (whatever older code left) and says so.
    first = write(plain, key, phone, ["Rendez-vous mardi"])
    destroy(plain, first)
    assert scrub.free_pages_known_zero(plain.conn)

    # A message, then enough batches for FTS5 to merge the segment holding its words
    # (automerge): the merged segment's pages go to the free list.
    (secret,) = write(plain, key, phone, [long_text(0, f"Diagnostic {SECRET_WORD} pour M. Martin")])
    freed = 0
    for n in range(1, 25):
        write(plain, key, phone, [long_text(n * 10 + m, "Compte rendu") for m in range(5)])
        freed = max(freed, plain.conn.execute("PRAGMA freelist_count").fetchone()[0])
    assert freed > 0
    plain.checkpoint()
    assert NEEDLE in file.read_bytes()  # positive control: the live message is there

    # Its destruction wipes no free page (a full wipe would write every one again),
    # and its words are nowhere in the file.
    assert not wiped(destroy(plain, [secret]))
    assert NEEDLE not in file.read_bytes()
    wal = file.with_name(file.name + "-wal")
    assert not wal.exists() or NEEDLE not in wal.read_bytes()
    assert plain.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_an_archive_an_older_release_can_open_is_wiped_at_every_destruction(
    plain: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A release that merged FTS segments without zeroing could open this schema
    # (a --rollback to it is allowed): its free pages are never trusted to be zero.
    monkeypatch.setattr(scrub, "ZEROED_FREES_FROM_SCHEMA", SCHEMA_VERSION + 1)
    calls: list[int] = []
    real = scrub.wipe_free_pages

    def counted(conn: Connection) -> int:
        calls.append(1)
        return real(conn)

    monkeypatch.setattr(scrub, "wipe_free_pages", counted)
    phone, key = new_phone(plain, OWNER)
    for n in range(2):
        destroy(plain, write(plain, key, phone, [f"Message {n}"]))
        assert not scrub.free_pages_known_zero(plain.conn)
    assert len(calls) == 2
    row = plain.conn.execute(
        "SELECT 1 FROM settings WHERE key = ?", (scrub.FREE_PAGES_ZEROED,)
    ).fetchone()
    assert row is None


def test_the_write_path_frees_content_pages_zeroed(plain: Archive) -> None:
    # What lets a destruction skip the wipe: no write of the ingest leaves a freed page
    # unzeroed, but the fold's conversation keys (kept for destroyed records anyway).
    phone, key = new_phone(plain, OWNER)
    ran: list[str] = []
    plain.conn.set_trace_callback(ran.append)
    try:
        for n in range(12):  # FTS5 merges among them
            write(plain, key, phone, [long_text(n * 10 + m, "Compte rendu") for m in range(5)])
    finally:
        plain.conn.set_trace_callback(None)
    assert any(sql.startswith("INSERT INTO messages_fts(rowid, text)") for sql in ran)
    assert not [sql for sql in ran if "secure_delete" in sql.lower()]
