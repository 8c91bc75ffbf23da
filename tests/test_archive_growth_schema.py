"""The schema that keeps ingest flat as the archive grows (migration 4 onwards): an
ordered duplicate key, one conversation index, FTS fed once per batch.

An archive written at schema 3 is upgraded on open and keeps its search results,
verify result and full-text index (issue #20 item 1); erasure, duplicates and new
messages then work on it as on an archive made at this schema. (Retention erases
only after the upgrade: this software has no erasure for a pre-migration-10 file.)
Duplicates are recognised on that key, search and verify read the one index, and a
crash anywhere in a batch never loses or doubles an index entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import (
    assert_index_matches_text,
    message,
    new_phone,
    open_with_keys,
    reads_before_text_once,
)
from strongroom.archive import db, writes
from strongroom.archive.errors import ArchiveError
from strongroom.archive.listings import list_conversations
from strongroom.archive.record import parse_record
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive, WriteOp
from strongroom.archive.verify import verify_archive
from strongroom.office.erasure import erase_in_txn

T0 = 1_760_000_000_000
QUERIES = ["oeuvre", "coeur", "reunion", "RÉUNION", "dossier", "facture", "absent", ""]
TEXTS = [
    "Une œuvre saisie chez le client",
    "Le cœur du dossier",
    "Réunion lundi à 9 h",
    "reunion reportée, dossier complet",
    "Facture jointe",
    "Sans ligature ni accent",
]


def snapshot(archive: Archive) -> dict[str, object]:
    """What a user sees: search hits, conversation counts, verify, the index's health."""
    with closing(archive.reader()) as conn:
        hits = {q: [(h.record_row, h.text) for h in search_messages(conn, q)] for q in QUERIES}
        conv = list_conversations(conn)
        in_conv = [
            [h.record_row for h in search_messages(conn, "", SearchFilters(conversation_id=c.id))]
            for c in conv
        ]
        report = verify_archive(conn, archive.blobs, bytes(archive.signing_key.verify_key))
        fts_integrity(conn)
        return {
            "hits": hits,
            "conversations": [(c.ref, c.messages) for c in conv],
            "in_conversation": in_conv,
            "verify": (report.ok, report.problems, report.records, report.destroyed, report.leaves),
        }


def fts_integrity(conn: db.Connection, *, against_content: bool = False) -> None:
    """FTS5's own check; with every entry compared with the messages' text too."""
    if against_content:
        assert_index_matches_text(conn)
    else:
        conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")


def fill(archive: Archive) -> tuple[int, SigningKey]:
    phone, key = new_phone(archive, owner="maitre.durand")
    other, other_key = new_phone(archive, owner="dr.martin", name="iPhone")
    for i, text in enumerate(TEXTS):
        conv = "client-a" if i % 2 else "client-b"
        archive.write(
            writes.store_record(message(key, text, conv=conv, at=T0 + i), phone, "maitre.durand")
        )
    for i in range(20):
        record = message(other_key, f"dossier patient {i}", conv="patient-x", at=T0 + i)
        archive.write(writes.store_record(record, other, "dr.martin"))
    return phone, key


def erase_first_patient_message(archive: Archive) -> None:
    """Retention erases one message: its row stays, its text and index entry go."""
    row = archive.conn.execute(
        "SELECT min(r.id) FROM records r JOIN devices d ON d.id = r.device_id"
        " WHERE d.owner = 'dr.martin'"
    ).fetchone()
    archive.write(lambda txn: erase_in_txn(txn, [int(row[0])]))


@pytest.fixture
def v3_data(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Path]:
    """A data dir written by software that knew migrations 1 to 3 (their trigger fed FTS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", 3)
        old = open_with_keys(tmp_path / "v3", archive_keys)
        try:
            assert db.schema_version(old.conn) == 3
            fill(old)
        finally:
            old.close()
    yield tmp_path / "v3"


def test_a_v3_archive_upgrades_with_the_same_search_verify_and_index(
    v3_data: Path, archive_keys: dict[str, bytes]
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", 3)
        old = open_with_keys(v3_data, archive_keys)
        with reads_before_text_once():
            before = snapshot(old)
        old.close()
    assert before["verify"][0] is True  # type: ignore[index]
    assert before["hits"]["oeuvre"] and before["hits"]["reunion"]  # type: ignore[index]
    assert len(before["hits"]["dossier"]) == 2 + 20  # type: ignore[index]

    archive = open_with_keys(v3_data, archive_keys)  # this software migrates on open
    try:
        assert db.schema_version(archive.conn) == SCHEMA_VERSION
        assert snapshot(archive) == before
        conn = archive.conn
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with closing(archive.reader()) as reader:
            fts_integrity(reader, against_content=True)
        # Retention erases a message of the upgraded archive: it leaves every search,
        # the index stays whole and the log still verifies.
        erase_first_patient_message(archive)
        after = snapshot(archive)
        hits = after["hits"]
        assert isinstance(hits, dict)
        assert len(hits["dossier"]) == 2 + 19
        assert "dossier patient 0" not in [text for _, text in hits["dossier"]]
        assert hits["oeuvre"] == before["hits"]["oeuvre"]  # type: ignore[index]
        assert after["verify"][0] is True  # type: ignore[index]
        with closing(archive.reader()) as reader:
            fts_integrity(reader, against_content=True)
    finally:
        archive.close()


def test_after_the_upgrade_duplicates_are_recognised_and_new_messages_found(
    v3_data: Path, archive_keys: dict[str, bytes]
) -> None:
    archive = open_with_keys(v3_data, archive_keys)
    try:
        duplicates_are_recognised_and_new_messages_found(archive)
    finally:
        archive.close()


def duplicates_are_recognised_and_new_messages_found(archive: Archive) -> None:
    device, key = new_phone(archive, owner="maitre.martin")
    first = message(key, "Première consultation", at=T0)
    stored = archive.write(writes.store_record(first, device, "maitre.martin"))
    # The phone did not get its ack and pushes the same record again.
    again = archive.write(writes.store_record(first, device, "maitre.martin"))
    assert again.duplicate and again.log_index == stored.log_index
    # A record stored long ago (before the upgrade, when there was one), pushed again
    # (a phone restored from its own backup), is recognised too.
    old_row = archive.conn.execute(
        "SELECT body, signature, device_id FROM records WHERE body IS NOT NULL LIMIT 1"
    ).fetchone()
    old = parse_record(bytes(old_row[0]), bytes(old_row[1]), max_blob_size=1 << 20)
    owner = archive.conn.execute(
        "SELECT owner FROM devices WHERE id = ?", (old_row[2],)
    ).fetchone()[0]
    assert archive.write(writes.store_record(old, int(old_row[2]), owner)).duplicate
    with closing(archive.reader()) as conn:
        assert [h.text for h in search_messages(conn, "premiere")] == ["Première consultation"]
        assert len(search_messages(conn, "reunion")) == 2
        fts_integrity(conn)
        assert verify_archive(conn, archive.blobs, bytes(archive.signing_key.verify_key)).ok


@pytest.fixture
def filled(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Archive]:
    """An archive at this schema with messages of two phones, one of them erased."""
    archive = open_with_keys(tmp_path / "data", archive_keys)
    try:
        fill(archive)
        erase_first_patient_message(archive)
        yield archive
    finally:
        archive.close()


def test_the_schema_has_an_ordered_duplicate_key_one_conversation_index_and_a_whole_index(
    filled: Archive,
) -> None:
    archive = filled
    assert db.schema_version(archive.conn) == SCHEMA_VERSION
    seen = snapshot(archive)
    assert seen["verify"][0] is True  # type: ignore[index]
    hits = seen["hits"]
    assert isinstance(hits, dict)
    # Ligatures and accents fold both ways; the erased message is found by no search.
    assert [text for _, text in hits["oeuvre"]] == [TEXTS[0]]
    assert [text for _, text in hits["coeur"]] == [TEXTS[1]]
    assert len(hits["reunion"]) == len(hits["RÉUNION"]) == 2
    assert len(hits["dossier"]) == 2 + 19  # 20 patient messages, one erased
    conn = archive.conn
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    indexes = {str(r[1]): bool(r[2]) for r in conn.execute("PRAGMA index_list(records)").fetchall()}
    # No index on the random hash alone; the ordered key is the unique one.
    columns = {
        name: [str(c[2]) for c in conn.execute(f"PRAGMA index_info({name})")] for name in indexes
    }
    assert ["record_id"] not in columns.values(), columns
    assert columns["records_dedup"] == ["device_id", "sent_at", "record_id"]
    assert indexes["records_dedup"] is True
    names = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "messages_conversation" not in names
    assert "attachments_message" in names
    assert "messages_ai" not in names  # no per-row trigger: FTS is fed once per batch


def test_duplicates_are_recognised_and_new_messages_found(filled: Archive) -> None:
    duplicates_are_recognised_and_new_messages_found(filled)


def index_entries(conn: db.Connection, word: str) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (word,)
        ).fetchone()[0]
    )


def test_a_batch_cut_short_anywhere_leaves_rows_and_index_together(archive: Archive) -> None:
    """The power goes at every point of a batch, the index insert included."""
    device, key = new_phone(archive)
    # How many SQLite VM steps one whole batch takes, measured on a twin batch.
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def batch(n: int) -> list[WriteOp]:
        return [
            writes.store_record(
                message(key, f"lot{n} numero {i}", at=T0 + 100 * n + i), device, "o"
            )
            for i in range(12)
        ]

    archive.conn.set_progress_handler(count, 1)
    archive.write_batch(batch(0))
    archive.conn.set_progress_handler(None, 0)
    total = steps[0]
    assert total > 100
    stored = 12
    for n, cut in enumerate(range(1, 2 * total, max(1, total // 60)), start=1):
        calls = [0]

        def cut_here(cut: int = cut) -> int:
            calls[0] += 1
            return 1 if calls[0] == cut else 0  # interrupt one statement: the batch fails

        archive.conn.set_progress_handler(cut_here, 1)
        try:
            archive.write_batch(batch(n))
            returned = True
        except Exception as exc:
            assert not isinstance(exc, ArchiveError) or "interrupt" in str(exc).lower()
            returned = False
        finally:
            archive.conn.set_progress_handler(None, 0)
        with closing(archive.reader()) as conn:
            rows = int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
            # All of the batch or none of it. A batch that returned is all there; one
            # that raised is not, unless the cut landed on the COMMIT's own last steps:
            # SQLite then reports "interrupted" for a transaction already durable.
            assert rows in (stored, stored + 12)
            committed = rows == stored + 12
            assert committed or not returned
            stored = rows
            # Every row is in the index exactly once, and nothing else is.
            assert index_entries(conn, "numero") == rows
            assert index_entries(conn, f"lot{n}") == (12 if committed else 0)
            fts_integrity(conn, against_content=True)
    assert stored > 12  # the sweep reached past the end of the batch too


def test_full_text_index_blocks_fit_in_one_sqlcipher_page(archive: Archive) -> None:
    """FTS5's default 4050-byte leaves spilled each onto a second (overflow) page."""
    device, key = new_phone(archive)
    words = "dossier audience tribunal ordonnance honoraires réunion expertise greffe".split()
    ops = [
        writes.store_record(
            message(key, " ".join(f"{words[(n + i) % 8]}{n * 31 + i}" for i in range(120))),
            device,
            "o",
        )
        for n in range(600)
    ]
    for start in range(0, len(ops), 200):
        archive.write_batch(ops[start : start + 200])
    sizes = [int(r[0]) for r in archive.conn.execute("SELECT length(block) FROM messages_fts_data")]
    # SQLCipher 4 keeps 80 bytes of each 4096-byte page (IV + HMAC): 4016 usable, and a
    # table row longer than 4016 - 35 = 3981 bytes (the block plus a few header bytes)
    # overflows onto another page.
    assert int(archive.conn.execute("PRAGMA cipher_page_size").fetchone()[0]) == 4096
    assert max(sizes) <= 3981 - 8, max(sizes)
    assert sum(size > 3000 for size in sizes) > 10  # the leaves are full, not merely small
