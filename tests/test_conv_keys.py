"""The conversation index as an LSM (schema migration 10, archive/conv_keys.py).

An archive written before the migration keeps every record findable by conversation
after it, with records written since (keys in conv_recent) and folded (conv_folded)
mixed; a fold that fails half-way loses and doubles nothing; every reader that finds
records by conversation keeps an indexed plan over both tables.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import keys_once_each, new_phone, open_with_keys
from strongroom.archive import conv_keys, db, schema, writes
from strongroom.archive.db import Connection
from strongroom.archive.listings import list_conversations
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.search import SearchFilters, search_messages
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive
from strongroom.office import export_scope, holds, matters, resolve, retention
from strongroom.office.erasure import erase_in_txn
from strongroom.office.export_scope import ExportScope
from strongroom.web.attachment_search import search_files
from support.records import attachment_fields, signed, signed_message

T0 = 1_760_000_000_000
# The schema version before the migration that made the conversation index an LSM
# (found by what it creates: later migrations are appended after it).
BEFORE_LSM = next(
    n for n, step in enumerate(schema.MIGRATIONS) if "CREATE TABLE conv_recent" in str(step)
)
OWNER = "maitre.durand"
CONVS = ("client-a", "client-b", "client-c")


def write_messages(archive: Archive, key: SigningKey, phone: int, start: int, count: int) -> None:
    """`count` messages over CONVS, dated out of arrival order within each conversation
    (a phone that was offline pushes older messages late)."""
    ops = []
    for n in range(start, start + count):
        at = T0 + (n * 7919) % 1000 * 1000 + n  # scattered, unique
        record = signed_message(key, f"message {n}", conv=CONVS[n % 3], at=at, n=n)
        ops.append(writes.store_record(record, phone, OWNER))
    archive.write_batch(ops)


def conversation_id(conn: Connection, ref: str) -> int:
    return int(conn.execute("SELECT id FROM conversations WHERE ref = ?", (ref,)).fetchone()[0])


def truth(conn: Connection) -> dict[int, list[tuple[int, int]]]:
    """Each conversation's records in reading order, read from the records table."""
    out: dict[int, list[tuple[int, int]]] = {}
    for conv, sent, rid in conn.execute(
        "SELECT conversation_id, sent_at, id FROM records ORDER BY conversation_id, sent_at, id"
    ):
        out.setdefault(int(conv), []).append((int(sent), int(rid)))
    return out


def readers_agree_with_records(conn: Connection) -> None:
    """What a user sees through each reader equals what the records table says."""
    expected = truth(conn)
    live = {
        conv: [rid for _, rid in rows if not _destroyed(conn, rid)]
        for conv, rows in expected.items()
    }
    for conv, rows in expected.items():
        # The conversation view: newest sent first, live messages only, page by page.
        pages = [
            [
                h.record_row
                for h in search_messages(
                    conn, "", SearchFilters(conversation_id=conv), limit=4, offset=o
                )
            ]
            for o in range(0, len(rows) + 4, 4)
        ]
        newest_first = [rid for _, rid in reversed(rows) if rid in live[conv]]
        assert [r for page in pages for r in page] == newest_first
        # An export of the conversation: every record (destroyed ones as gaps), in order.
        scope = ExportScope("conversation", conversation_id=conv)
        exported = [int(row[0]) for row in export_scope.select_records(conn, scope)]
        assert exported == [rid for _, rid in rows]
        assert export_scope.count_records(conn, scope) == len(rows)
    counted = {c.id: c.messages for c in list_conversations(conn)}
    assert counted == {conv: len(rids) for conv, rids in live.items()}


def _destroyed(conn: Connection, rid: int) -> bool:
    row = conn.execute("SELECT destroyed_at FROM records WHERE id = ?", (rid,)).fetchone()
    return row[0] is not None


@pytest.fixture
def v_before(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Path]:
    """A data dir written by the software before migration 10, with a destroyed record."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", schema.MIGRATIONS[:BEFORE_LSM])
        patch.setattr(db, "SCHEMA_VERSION", BEFORE_LSM)
        old = open_with_keys(tmp_path / "data", archive_keys)
        try:
            assert db.schema_version(old.conn) == BEFORE_LSM
            assert not conv_keys.has_lsm(old.conn)
            phone, key = new_phone(old, OWNER)
            write_messages(old, key, phone, 0, 60)
            first = int(old.conn.execute("SELECT min(id) FROM records").fetchone()[0])
            old.write(lambda txn: destroyed_as_before(txn.conn, first, txn.at_ms))
        finally:
            old.close()
    yield tmp_path / "data"


def destroyed_as_before(conn: Connection, row_id: int, at_ms: int) -> None:
    """What the software before migration 10 left of a destroyed record (its erasure's
    statements then; erase_in_txn now reads the conversation index migration 10 makes)."""
    conn.execute("DELETE FROM messages WHERE record_id = ?", (row_id,))  # messages_ad: FTS
    conn.execute("DELETE FROM attachments WHERE record_id = ?", (row_id,))
    conn.execute("DELETE FROM receipts WHERE record_id = ?", (row_id,))
    conn.execute(
        "UPDATE records SET body = NULL, signature = NULL, destroyed_at = ? WHERE id = ?",
        (at_ms, row_id),
    )


def test_an_archive_from_before_keeps_its_conversations_with_new_and_folded_records(
    v_before: Path, archive_keys: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = open_with_keys(v_before, archive_keys)  # migrates on open
    try:
        conn = archive.conn
        assert db.schema_version(conn) == SCHEMA_VERSION
        names = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "records_conversation" not in names
        assert conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0] == 60
        assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys_once_each(conn)
        readers_agree_with_records(conn)

        # New records after the migration: their keys wait in conv_recent, mixed
        # with the folded ones of the same conversations, dated among them.
        phone, key = new_phone(archive, OWNER, name="iPhone")
        monkeypatch.setattr(conv_keys, "FOLD_AT", 50)
        write_messages(archive, key, phone, 1000, 30)
        assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 30
        keys_once_each(conn)
        readers_agree_with_records(conn)
        # Past FOLD_AT, the batch that crosses it is followed by a fold of them all.
        write_messages(archive, key, phone, 2000, 30)
        assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0] == 120
        assert archive.last_fold is not None and archive.last_fold.keys == 60
        write_messages(archive, key, phone, 3000, 10)
        keys_once_each(conn)
        readers_agree_with_records(conn)
        # A record destroyed after the migration: gone from the conversation view and
        # its count, a gap in the export, not counted as held.
        conv = conversation_id(conn, "client-b")
        newest = search_messages(conn, "", SearchFilters(conversation_id=conv), limit=1)[0]
        hold = holds.HoldSpec("conversation", "saisie", conversation_id=conv)
        archive.write(holds.place_hold(hold, "admin"))
        reach_before = holds.hold_reach(conn, holds.list_holds(conn, active_only=True))
        archive.write(lambda txn: erase_in_txn(txn, [newest.record_row]))
        reach = holds.hold_reach(conn, holds.list_holds(conn, active_only=True))
        (held,) = reach.values()
        (held_before,) = reach_before.values()
        assert held.records == held_before.records - 1
        live_total = sum(
            1
            for (rid,) in conn.execute("SELECT id FROM records WHERE conversation_id = ?", (conv,))
            if not _destroyed(conn, rid)
        )
        assert held.records == live_total
        readers_agree_with_records(conn)
        keys_once_each(conn)
    finally:
        archive.close()


def test_a_fold_that_fails_half_way_loses_and_doubles_nothing(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 40)
    conn = archive.conn
    before = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    monkeypatch.setattr(conv_keys, "FOLD_AT", 50)
    # The fold's DELETE fails after its INSERT into conv_folded ran (a crash there).
    conn.execute(
        "CREATE TEMP TRIGGER fail_fold BEFORE DELETE ON main.conv_recent"
        " BEGIN SELECT RAISE(ABORT, 'power cut'); END"
    )
    # The batch is durable before its fold starts: the fold's failure is not the batch's.
    write_messages(archive, key, phone, 100, 20)
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == before + 20
    assert conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 60
    assert archive.last_fold is None
    keys_once_each(conn)
    readers_agree_with_records(conn)
    conn.execute("DROP TRIGGER temp.fail_fold")
    # The next try waits for FOLD_AT more keys (a fold failing for good must not cost
    # every commit a failed fold), then moves them all.
    write_messages(archive, key, phone, 200, 20)
    assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 80
    write_messages(archive, key, phone, 300, 30)
    assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 0
    assert archive.last_fold is not None and archive.last_fold.keys == 110
    keys_once_each(conn)
    readers_agree_with_records(conn)
    # A key folded twice is refused by conv_folded's primary key, not kept twice.
    with pytest.raises(Exception, match="UNIQUE"):
        conn.execute("INSERT INTO conv_folded SELECT * FROM conv_folded LIMIT 1")


def _fold_then_die(data: Path, keys: dict[str, bytes]) -> None:
    """In a child: a batch that crosses FOLD_AT, SIGKILLed as its fold empties conv_recent
    (after the fold's INSERT into conv_folded ran, before the fold's COMMIT)."""
    conv_keys.FOLD_AT = 50
    archive = open_with_keys(data, keys)
    phone = int(archive.conn.execute("SELECT max(id) FROM devices").fetchone()[0])
    key = SigningKey(hashlib.sha256(b"fold phone").digest())

    def trace(sql: str) -> None:
        if sql.startswith("DELETE FROM conv_recent"):
            os.kill(os.getpid(), signal.SIGKILL)

    archive.conn.set_trace_callback(trace)
    write_messages(archive, key, phone, 500, 30)
    os._exit(3)  # not reached: the fold is killed


def test_a_fold_killed_half_way_loses_and_doubles_nothing(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    archive = open_with_keys(data, archive_keys)
    key = SigningKey(hashlib.sha256(b"fold phone").digest())
    phone = archive.write(
        writes.add_device(
            writes.NewDevice(bytes(key.verify_key), os.urandom(32), "Pixel", OWNER, "staff", "test")
        )
    )
    write_messages(archive, key, phone, 0, 40)
    archive.close()
    child = multiprocessing.get_context("fork").Process(
        target=_fold_then_die, args=(data, archive_keys)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    archive = open_with_keys(data, archive_keys)
    try:
        conn = archive.conn
        # The batch committed before its fold began: its records stay, with their keys
        # still in conv_recent; the killed fold is gone whole.
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 70
        assert conn.execute("SELECT count(*) FROM conv_recent").fetchone()[0] == 70
        assert conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0] == 0
        keys_once_each(conn)
        readers_agree_with_records(conn)
    finally:
        archive.close()


# Full reads of the tables a conversation's records are found in: the records table
# (`r`, `records`) or either key table (`k`, conv_folded, conv_recent).
_FULL_READ = re.compile(r"^SCAN (records|r|k|conv_folded|conv_recent)\b")


def plans(conn: Connection, work: Callable[[], object]) -> dict[str, list[str]]:
    """Every statement `work` runs on `conn` that reads rows, with its query plan."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    out: dict[str, list[str]] = {}
    for sql in statements:
        if (
            re.match(r"\s*(SELECT|UPDATE|DELETE)\b", sql, re.IGNORECASE)
            and "sqlite_master" not in sql
        ):
            steps = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            out[sql] = [str(step[3]) for step in steps]
    return out


def test_every_reader_by_conversation_keeps_an_indexed_plan(archive: Archive) -> None:
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 60)
    conn = archive.conn
    conn.execute("BEGIN IMMEDIATE")
    conv_keys.fold(conn)  # some keys folded, some recent: both arms hold rows
    conn.execute("COMMIT")
    write_messages(archive, key, phone, 100, 30)
    conv = conversation_id(conn, "client-a")
    message_ref = conn.execute(
        "SELECT client_id FROM records WHERE conversation_id = ? LIMIT 1", (conv,)
    ).fetchone()[0]
    blob = hashlib.sha256(b"scan").digest()
    attachment = signed(key, attachment_fields(message_ref, blob, 4, conv="client-a", at=T0))
    matter = archive.write(matters.create_matter("2024-17", "M. Petit", "", "admin"))
    archive.write(matters.attach(matter, "admin", conversation_id=conv))
    for spec in (
        holds.HoldSpec("conversation", "saisie", conversation_id=conv),
        holds.HoldSpec("date_range", "audit", from_ms=T0, to_ms=T0 + 500_000),
        holds.HoldSpec("person", "plainte", person=OWNER),
    ):
        archive.write(holds.place_hold(spec, "admin"))
    victim = search_messages(conn, "", SearchFilters(conversation_id=conv), limit=1)[0]
    scopes = [
        ExportScope("conversation", conversation_id=conv),
        ExportScope("conversation", conversation_id=conv, from_ms=T0, to_ms=T0 + 500_000),
        ExportScope("person", person=OWNER),
        ExportScope("matter", matter_id=matter),
    ]

    def readers() -> None:
        search_messages(conn, "", SearchFilters(conversation_id=conv), limit=5)
        search_messages(conn, "", SearchFilters(conversation_id=conv, since_ms=T0), limit=5)
        search_messages(conn, "message", SearchFilters(conversation_id=conv), limit=5)
        list_conversations(conn)
        holds.hold_reach(conn, holds.list_holds(conn, active_only=True))
        for scope in scopes:
            list(export_scope.select_records(conn, scope, with_leaf=True))
            export_scope.count_records(conn, scope)
        retention.find_due(conn, T0 + 10**12)
        resolve.explain_record(conn, conv, T0)
        search_files(conn, "", SearchFilters(conversation_id=conv))
        search_messages(conn, "", SearchFilters(has_attachment=True), limit=5)  # from attachments

    def writers() -> None:
        archive.write(writes.store_record(attachment, phone, OWNER))
        archive.write(lambda txn: erase_in_txn(txn, [victim.record_row]))

    found = plans(conn, readers) | plans(conn, writers)
    # Each reader above that finds records by conversation went through both tables;
    # the one statement naming a single table is the batch's fold check.
    by_keys = {sql: steps for sql, steps in found.items() if "conv_folded" in sql}
    assert len(by_keys) >= 12, list(by_keys)
    one_table = [sql for sql in found if ("conv_folded" in sql) != ("conv_recent" in sql)]
    assert one_table and all("min(record_id)" in sql for sql in one_table), one_table
    full = {sql: s for sql, s in found.items() if any(_FULL_READ.match(step) for step in s)}
    assert full == {}
    for sql, steps in by_keys.items():
        assert any("conv_folded" in s or "PRIMARY KEY (conversation_id=" in s for s in steps), sql
        assert any("conv_recent_conversation" in s for s in steps), sql
    # Exports stream: the two tables are merged in reading order, never sorted whole.
    exports = [s for sql, s in by_keys.items() if "k_conv" in sql]
    assert len(exports) >= 3
    for steps in exports:
        assert "MERGE (UNION ALL)" in steps and not any("TEMP B-TREE" in s for s in steps), steps


def _folded_and_recent(archive: Archive) -> tuple[Connection, bytes]:
    """30 messages folded and 10 still recent, verified clean: (the connection, the
    box's verify key)."""
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 30)
    conn = archive.conn
    conn.execute("BEGIN IMMEDIATE")
    conv_keys.fold(conn)
    conn.execute("COMMIT")
    write_messages(archive, key, phone, 100, 10)
    box_key = bytes(archive.signing_key.verify_key)
    assert verify_archive(conn, archive.blobs, box_key).problems == []
    return conn, box_key


def test_verify_names_a_record_missing_from_the_conversation_index(archive: Archive) -> None:
    conn, box_key = _folded_and_recent(archive)
    # Someone with the key hides a record from its conversation's pages and exports.
    folded = conn.execute("SELECT * FROM conv_folded LIMIT 1").fetchone()
    conn.execute("DELETE FROM conv_folded WHERE record_id = ?", (folded[2],))
    problems = verify_archive(conn, archive.blobs, box_key).problems
    assert any("conversation index" in p for p in problems), problems
    # Put back, it verifies; a key listed twice (folded and still recent) is named.
    conn.execute("INSERT INTO conv_folded VALUES (?, ?, ?)", folded)
    assert verify_archive(conn, archive.blobs, box_key).problems == []
    recent = conn.execute("SELECT conversation_id, sent_at, record_id FROM conv_recent").fetchone()
    conn.execute("INSERT INTO conv_folded VALUES (?, ?, ?)", recent)
    problems = verify_archive(conn, archive.blobs, box_key).problems
    assert any("conversation index" in p for p in problems), problems
    # A key moved to another record's id (same count) is named too.
    conn.execute("DELETE FROM conv_folded WHERE record_id = ?", (recent[2],))
    conn.execute(
        "UPDATE conv_recent SET record_id = record_id + 1000 WHERE record_id = ?", (recent[2],)
    )
    problems = verify_archive(conn, archive.blobs, box_key).problems
    assert any("conversation index" in p for p in problems), problems


def test_verify_names_a_key_moved_to_another_conversation(archive: Archive) -> None:
    """Same count, ids and dates: only the conversation changed, so the record is gone
    from its conversation's pages and exports and shown in another's."""
    conn, box_key = _folded_and_recent(archive)
    first, other = conversation_id(conn, CONVS[0]), conversation_id(conn, CONVS[1])
    for table in conv_keys.ARMS:
        moved = conn.execute(
            f"SELECT record_id FROM {table} WHERE conversation_id = ? LIMIT 1",
            (first,),
        ).fetchone()[0]
        conn.execute(f"UPDATE {table} SET conversation_id = ? WHERE record_id = ?", (other, moved))
        problems = verify_archive(conn, archive.blobs, box_key).problems
        assert any("name another conversation" in p for p in problems), (table, problems)
        assert conv_keys.index_problems(conn) == [p for p in problems if "conversation index" in p]
        conn.execute(f"UPDATE {table} SET conversation_id = ? WHERE record_id = ?", (first, moved))
        assert verify_archive(conn, archive.blobs, box_key).problems == []
