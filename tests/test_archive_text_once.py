"""Migration 8: a message's text is stored once, inside its signed record.

An archive at schema 7 holds rows written the old way (text in messages.text);
after the upgrade new rows keep only where the text lies in records.body. Both
must search, list, verify and be destroyed alike, and the full-text index must
stay exactly the text the archive shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import (
    SELECT_TEXTS,
    assert_index_matches_text,
    message,
    new_phone,
    open_with_keys,
)
from strongroom.archive import db, writes
from strongroom.archive.record import text_span
from strongroom.archive.schema import MIGRATIONS, SCHEMA_VERSION
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive
from strongroom.office.erasure import erase_in_txn
from support.records import message_fields, signed

T0 = 1_760_000_000_000
OWNER = "maitre.durand"
OLD = ["Une œuvre saisie avant la mise à jour", "Réunion ancienne au cabinet"]
NEW = ["Une œuvre reçue après la mise à jour", "Réunion nouvelle au tribunal"]
# The version before the migration that stores the text once (whatever lands after it).
(TEXT_ONCE,) = [n for n, m in enumerate(MIGRATIONS, 1) if "ADD COLUMN text_at" in m]


def push(archive: Archive, key: SigningKey, device: int, text: str, at: int) -> None:
    archive.write(writes.store_record(message(key, text, conv="dossier-1", at=at), device, OWNER))


@pytest.fixture
def mixed(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Archive]:
    """Rows written at the schema before, then the archive upgraded and written again."""
    data = tmp_path / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", TEXT_ONCE - 1)
        old = open_with_keys(data, archive_keys)
        try:
            device, key = new_phone(old, owner=OWNER)
            for n, text in enumerate(OLD):
                push(old, key, device, text, T0 + n)
            # Enough text that the messages table spans many pages (the migration must
            # not rewrite them).
            for n in range(150):
                push(old, key, device, f"remplissage {n} " + "x" * 900, T0 + 10 + n)
        finally:
            old.close()
    archive = open_with_keys(data, archive_keys)
    try:
        assert db.schema_version(archive.conn) == SCHEMA_VERSION
        for n, text in enumerate(NEW):
            push(archive, key, device, text, T0 + 1_000 + n)
        yield archive
    finally:
        archive.close()


def test_new_rows_keep_the_text_only_in_the_signed_record(mixed: Archive) -> None:
    conn = mixed.conn
    old = conn.execute(
        "SELECT count(*) FROM messages WHERE text IS NOT NULL AND text_at IS NULL"
    ).fetchone()[0]
    new = conn.execute(
        "SELECT count(*) FROM messages WHERE text IS NULL AND text_at IS NOT NULL"
    ).fetchone()[0]
    assert (old, new) == (152, 2)
    shown = {row[0] for row in conn.execute(SELECT_TEXTS)}
    assert set(OLD + NEW) <= shown


def test_search_and_the_conversation_page_show_both_kinds_of_row(mixed: Archive) -> None:
    with closing(mixed.reader()) as conn:
        assert [h.text for h in search_messages(conn, "oeuvre")] == [NEW[0], OLD[0]]
        assert [h.text for h in search_messages(conn, "reunion tribunal")] == [NEW[1]]
        assert [h.text for h in search_messages(conn, "cabinet")] == [OLD[1]]
        conv = search_messages(conn, "oeuvre")[0].conversation_id
        page = search_messages(conn, "", SearchFilters(conversation_id=conv), limit=500)
        texts = [h.text for h in page]
        assert texts[:2] == [NEW[1], NEW[0]] and texts[-2:] == [OLD[1], OLD[0]]
        assert_index_matches_text(conn)
        report = verify_archive(conn, mixed.blobs, bytes(mixed.signing_key.verify_key))
        assert report.ok, report.problems


def test_destroying_old_and_new_rows_removes_their_exact_index_entries(
    mixed: Archive,
) -> None:
    conn = mixed.conn
    with closing(mixed.reader()) as reader:
        doomed = [h.record_row for h in search_messages(reader, "oeuvre")]
    assert len(doomed) == 2  # one written before the upgrade, one after
    mixed.write(lambda txn: erase_in_txn(txn, doomed))
    with closing(mixed.reader()) as reader:
        assert search_messages(reader, "oeuvre") == []
        assert search_messages(reader, "saisie") == []
        # The neighbours' entries are intact, and nothing else is in the index.
        assert len(search_messages(reader, "reunion")) == 2
        assert_index_matches_text(reader)
    bodies = conn.execute(
        "SELECT count(*) FROM records WHERE id IN (?, ?) AND body IS NULL", doomed
    ).fetchone()[0]
    assert bodies == 2
    assert all("œuvre" not in str(t) for (t,) in conn.execute(SELECT_TEXTS))
    report = verify_archive(conn, mixed.blobs, bytes(mixed.signing_key.verify_key))
    assert report.ok and report.destroyed == 2, report.problems


def test_an_edit_and_a_deletion_marker_are_stored_and_indexed_as_before(
    mixed: Archive,
) -> None:
    device, key = new_phone(mixed, owner="dr.martin", name="iPhone")
    original = message(key, "Rendez-vous jeudi", conv="c-2", at=T0 + 5_000)
    edit = message_fields("Rendez-vous vendredi", conv="c-2", at=T0 + 5_001)
    edit.update(kind="edit", ref=original.client_id)
    deletion = message_fields("", conv="c-2", at=T0 + 5_002)
    del deletion["text"]
    deletion.update(kind="deletion", ref=original.client_id)
    for record in (original, signed(key, edit), signed(key, deletion)):
        mixed.write(writes.store_record(record, device, "dr.martin"))
    marker = mixed.conn.execute(
        "SELECT text, text_at, deleted FROM messages WHERE edits_client_id IS NOT NULL"
        " ORDER BY record_id"
    ).fetchall()
    assert [tuple(row) for row in marker][1] == (None, None, 1)  # no text to point at
    with closing(mixed.reader()) as reader:
        found = search_messages(reader, "rendez")
        assert [h.text for h in found] == ["Rendez-vous vendredi", "Rendez-vous jeudi"]
        assert_index_matches_text(reader)
        report = verify_archive(reader, mixed.blobs, bytes(mixed.signing_key.verify_key))
        assert report.ok, report.problems


def test_a_text_span_that_no_longer_matches_the_signature_is_named_by_verify(
    mixed: Archive,
) -> None:
    conn = mixed.conn
    conn.execute(
        "UPDATE messages SET text_at = text_at + 1, text_len = text_len - 1"
        " WHERE record_id = (SELECT max(record_id) FROM messages)"
    )
    report = verify_archive(conn, mixed.blobs, bytes(mixed.signing_key.verify_key))
    assert not report.ok
    assert any("message row differs from the signed record" in p for p in report.problems)


def test_the_span_is_the_texts_own_bytes_even_when_another_field_repeats_them() -> None:
    key = SigningKey.generate()
    # The conversation id holds the same bytes as the text, and comes first.
    record = message(key, "dossier", conv="dossier", at=T0)
    span = text_span(record)
    assert span is not None
    at, length = span
    assert record.raw[at - 1 : at - 1 + length].decode() == "dossier"
    assert text_span(message(key, "", at=T0)) is not None


def test_the_migration_does_not_rewrite_the_messages(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", TEXT_ONCE - 1)
        old = open_with_keys(data, archive_keys)
        try:
            device, key = new_phone(old, owner=OWNER)
            for n in range(300):
                push(old, key, device, f"message {n} " + "x" * 900, T0 + n)
            pages = old.conn.execute("PRAGMA page_count").fetchone()[0]
            old.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            old.close()
    assert pages > 100
    conn = db.connect(data / "archive.db", archive_keys["archive"])
    try:
        # This migration alone: the later ones add tables and indexes of their own.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(db, "MIGRATIONS", MIGRATIONS[:TEXT_ONCE])
            patch.setattr(db, "SCHEMA_VERSION", TEXT_ONCE)
            db.migrate(conn)
        assert db.schema_version(conn) == TEXT_ONCE
        wal = (data / "archive.db-wal").stat().st_size
        # A handful of pages (the schema table's), not the ~80 pages of messages.
        assert wal < 20 * 4200, wal
    finally:
        conn.close()


def test_an_empty_text_reads_back_empty_not_missing(mixed: Archive) -> None:
    device, key = new_phone(mixed, owner="dr.roux", name="Fairphone")
    empty = message(key, "", conv="vide", at=T0 + 9_000)
    mixed.write(writes.store_record(empty, device, "dr.roux"))
    with closing(mixed.reader()) as reader:
        conv = reader.execute("SELECT id FROM conversations WHERE ref = 'vide'").fetchone()[0]
        [hit] = search_messages(reader, "", SearchFilters(conversation_id=int(conv)))
        assert hit.text == ""
        report = verify_archive(reader, mixed.blobs, bytes(mixed.signing_key.verify_key))
        assert report.ok, report.problems
