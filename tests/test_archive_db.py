"""The archive file on disk: encrypted under the raw key, durable, versioned."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import db, schema, writes
from strongroom.archive.errors import SchemaMigrationFailed, SchemaTooNew, WrongArchiveKey
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive

SECRET_TEXT = "Le dossier Martin-Lefebvre: honoraires confidentiels 48213"
DEVICE_NAME = "iPhone-de-Maitre-Quesnel"


def _populate(archive: Archive) -> None:
    device_id, key = new_phone(archive, owner="maitre.quesnel", name=DEVICE_NAME)
    archive.write_batch(
        [
            writes.store_record(message(key, f"{SECRET_TEXT} #{i}"), device_id, "maitre.quesnel")
            for i in range(20)
        ]
    )
    archive.write(writes.audit("admin", "login", "web", {"note": "connexion-auditeur-7781"}))


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in data_dir.iterdir()
        if p.name.startswith("archive.db") and not p.name.endswith("-shm")
    }


def test_file_and_wal_hold_no_plaintext(archive: Archive) -> None:
    _populate(archive)
    data_dir = archive.path.parent
    files = _files(data_dir)
    # While the archive is open the writes sit in the WAL: both must be opaque.
    assert {"archive.db", "archive.db-wal"} <= files.keys()
    assert len(files["archive.db-wal"]) > 0
    needles = [
        SECRET_TEXT.encode(),
        b"Martin-Lefebvre",
        DEVICE_NAME.encode(),
        DEVICE_NAME.encode("utf-16-le"),
        b"maitre.quesnel",
        b"connexion-auditeur-7781",
        b"SQLite format 3",
        b"CREATE TABLE",
    ]
    for name, content in files.items():
        for needle in needles:
            assert needle not in content, f"{needle!r} found in clear in {name}"
    archive.close()
    # After the last connection closes the WAL is checkpointed into the file.
    for name, content in _files(data_dir).items():
        for needle in needles:
            assert needle not in content, f"{needle!r} found in clear in {name} after close"


def test_cannot_open_without_the_key(archive: Archive) -> None:
    _populate(archive)
    path = archive.path
    archive.close()
    for module in (sqlite3, sqlcipher3):
        conn = module.connect(str(path))
        with pytest.raises(module.DatabaseError, match="not a database"):
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        conn.close()


def test_wrong_key_is_refused_and_leaves_the_file_untouched(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    box = Archive.open(
        data, archive_keys["archive"], archive_keys["blob"], SigningKey(archive_keys["sign_seed"])
    )
    _populate(box)
    box.close()
    before = _files(data)
    wrong = bytearray(archive_keys["archive"])
    wrong[-1] ^= 1  # one bit away from the right key
    with pytest.raises(WrongArchiveKey):
        Archive.open(
            data, bytes(wrong), archive_keys["blob"], SigningKey(archive_keys["sign_seed"])
        )
    with pytest.raises(WrongArchiveKey):
        db.connect(data / "archive.db", os.urandom(32))
    assert _files(data) == before
    # ...and the right key still opens it with everything in place.
    again = Archive.open(
        data, archive_keys["archive"], archive_keys["blob"], SigningKey(archive_keys["sign_seed"])
    )
    assert again.conn.execute("SELECT count(*) FROM records").fetchone()[0] == 20
    again.close()


def test_key_must_be_32_raw_bytes(tmp_path: Path) -> None:
    for bad in (b"", b"x" * 31, b"x" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            db.connect(tmp_path / "a.db", bad)


def test_wal_full_sync_and_secure_delete_in_force(archive: Archive) -> None:
    reader = archive.reader()
    for conn in (archive.conn, reader):
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        # threat-model.md: nothing in the clear, "not temp files": sorts stay in memory.
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
    reader.close()


def test_raw_key_bypasses_the_passphrase_kdf(
    archive: Archive, archive_keys: dict[str, bytes]
) -> None:
    """A raw x'..' key is used as is: the PBKDF2 iteration count plays no part.

    With a passphrase key, changing kdf_iter changes the derived key and the
    file no longer opens; with the raw key it opens whatever kdf_iter says.
    This proves opening never runs the 256,000-round PBKDF2 (no timing needed).
    """
    _populate(archive)
    archive.close()
    raw_hex = archive_keys["archive"].hex()
    assert db._key_pragma(archive_keys["archive"]) == f"PRAGMA key = \"x'{raw_hex}'\""
    conn = sqlcipher3.connect(str(archive.path))
    conn.execute(f"PRAGMA key = \"x'{raw_hex}'\"")
    conn.execute("PRAGMA kdf_iter = 1")
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 20
    conn.close()

    # The control: the same experiment on a passphrase-keyed file fails.
    other = archive.path.parent / "passphrase.db"
    made = sqlcipher3.connect(str(other))
    made.execute("PRAGMA key = 'correct horse battery staple'")
    made.execute("CREATE TABLE t (x)")
    made.commit()
    made.close()
    probe = sqlcipher3.connect(str(other))
    probe.execute("PRAGMA cipher_log_level = NONE")
    probe.execute("PRAGMA key = 'correct horse battery staple'")
    probe.execute("PRAGMA kdf_iter = 1")
    with pytest.raises(sqlcipher3.DatabaseError):
        probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
    probe.close()


def test_fresh_file_gets_the_current_schema(tmp_path: Path) -> None:
    conn = db.open_archive_db(tmp_path / "a.db", os.urandom(32))
    assert db.schema_version(conn) == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"devices", "conversations", "records", "messages", "receipts", "attachments"} <= tables
    assert {"log_leaves", "log_nodes", "tree_heads", "audit_events", "messages_fts"} <= tables
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    key = os.urandom(32)
    conn = db.open_archive_db(tmp_path / "a.db", key)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match=str(SCHEMA_VERSION + 1)):
        db.open_archive_db(tmp_path / "a.db", key)
    # Refusing must not have "fixed" the version either.
    conn = db.connect(tmp_path / "a.db", key)
    assert db.schema_version(conn) == SCHEMA_VERSION + 1
    conn.close()


class _SpyList(list[str]):
    def __init__(self, items: list[str]) -> None:
        super().__init__(items)
        self.reads: list[Any] = []

    def __getitem__(self, index: Any) -> Any:
        self.reads.append(index)
        return super().__getitem__(index)


def test_reopening_does_not_rerun_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    conn = db.open_archive_db(tmp_path / "a.db", key)
    conn.execute("INSERT INTO settings (key, value) VALUES ('practice', 'Cabinet Quesnel')")
    conn.close()
    spy = _SpyList(list(schema.MIGRATIONS))
    monkeypatch.setattr(db, "MIGRATIONS", spy)
    conn = db.open_archive_db(tmp_path / "a.db", key)
    assert spy.reads == []
    assert db.migrate(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT value FROM settings").fetchall() == [("Cabinet Quesnel",)]
    conn.close()


def test_a_failing_migration_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    db.open_archive_db(tmp_path / "a.db", key).close()
    broken = "CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(db, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlcipher3.OperationalError, match="no_such_table"):
        db.open_archive_db(tmp_path / "a.db", key)
    conn = db.connect(tmp_path / "a.db", key)
    assert db.schema_version(conn) == SCHEMA_VERSION
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name='half_done'").fetchone()[0] == 0
    )
    conn.close()


def test_a_refused_open_does_not_leak_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    conn = db.open_archive_db(tmp_path / "a.db", key)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    opened: list[Any] = []
    real_connect = db.connect

    def spy(path: Path, k: bytes, *, readonly: bool = False) -> Any:
        opened.append(real_connect(path, k, readonly=readonly))
        return opened[-1]

    monkeypatch.setattr(db, "connect", spy)
    with pytest.raises(SchemaTooNew):
        db.open_archive_db(tmp_path / "a.db", key)
    with pytest.raises(sqlcipher3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_migration_replacing_a_table_is_checked_for_dangling_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    conn = db.open_archive_db(tmp_path / "a.db", key)
    conn.execute("INSERT INTO settings (key, value) VALUES ('practice', 'Cabinet Quesnel')")
    conn.close()
    # A copy of devices that forgets the rows records and others point at.
    replaced = (
        "CREATE TABLE devices_new (id INTEGER PRIMARY KEY, sign_key BLOB, noise_key BLOB,"
        " name TEXT, owner TEXT, role TEXT, paired_at INTEGER, pairing_method TEXT,"
        " last_seen INTEGER, revoked_at INTEGER, revoked_reason TEXT);"
        " DROP TABLE devices; ALTER TABLE devices_new RENAME TO devices;"
    )
    conn = db.connect(tmp_path / "a.db", key)
    conn.execute(
        "INSERT INTO devices (sign_key, noise_key, name, owner, paired_at,"
        " pairing_method) VALUES (x'01', x'02', 'Pixel', 'o', 0, 'test')"
    )
    conn.execute(
        "INSERT INTO conversations (owner, ref, created_at, last_at) VALUES ('o', 'c', 0, 0)"
    )
    conn.execute(
        "INSERT INTO records (record_id, device_id, conversation_id, kind, client_id,"
        " sent_at, received_at, content_sha256, log_index)"
        " VALUES (x'aa', 1, 1, 'message', 'm', 0, 0, x'aa', 0)"
    )
    conn.close()
    monkeypatch.setattr(db, "MIGRATIONS", [*schema.MIGRATIONS, replaced])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SchemaMigrationFailed, match="dangling reference in records"):
        db.open_archive_db(tmp_path / "a.db", key)
    conn = db.connect(tmp_path / "a.db", key)
    assert db.schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    conn.close()


def test_a_migration_adding_columns_does_not_read_every_table_at_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    db.open_archive_db(tmp_path / "a.db", key).close()
    monkeypatch.setattr(
        db, "MIGRATIONS", [*schema.MIGRATIONS, "ALTER TABLE settings ADD COLUMN note TEXT;"]
    )
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    conn = db.connect(tmp_path / "a.db", key)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    db.migrate(conn)
    conn.set_trace_callback(None)
    assert db.schema_version(conn) == SCHEMA_VERSION + 1
    assert statements and not any("foreign_key_check" in s for s in statements)
    conn.close()


def _archive_with_one_record(path: Path, key: bytes) -> None:
    conn = db.open_archive_db(path, key)
    conn.execute(
        "INSERT INTO devices (sign_key, noise_key, name, owner, paired_at,"
        " pairing_method) VALUES (x'01', x'02', 'Pixel', 'o', 0, 'test')"
    )
    conn.execute(
        "INSERT INTO conversations (owner, ref, created_at, last_at) VALUES ('o', 'c', 0, 0)"
    )
    conn.execute(
        "INSERT INTO records (record_id, device_id, conversation_id, kind, client_id,"
        " sent_at, received_at, content_sha256, log_index)"
        " VALUES (x'aa', 1, 1, 'message', 'm', 0, 0, x'aa', 0)"
    )
    conn.close()


@pytest.mark.parametrize(
    "migration",
    [
        # A copy that writes an id no device has (no table dropped).
        "INSERT INTO records (record_id, device_id, conversation_id, kind, client_id,"
        " sent_at, received_at, content_sha256, log_index)"
        " SELECT x'bb', device_id + 998, conversation_id, kind, 'm2', 0, 0, x'bb', 1"
        " FROM records;",
        # A backfill that moves records to a device that does not exist.
        "UPDATE records SET device_id = 999;",
        # A clean-up deleting the device a record still points at.
        "DELETE FROM devices;",
    ],
    ids=["insert-select", "update", "delete-parent"],
)
def test_a_migration_writing_a_dangling_reference_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migration: str
) -> None:
    key = os.urandom(32)
    _archive_with_one_record(tmp_path / "a.db", key)
    monkeypatch.setattr(db, "MIGRATIONS", [*schema.MIGRATIONS, migration])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SchemaMigrationFailed, match="dangling reference in records"):
        db.open_archive_db(tmp_path / "a.db", key)
    conn = db.connect(tmp_path / "a.db", key)
    assert db.schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT device_id FROM records").fetchall() == [(1,)]
    assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    conn.close()


def test_the_latest_shipped_migration_does_not_read_every_table_at_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The last shipped migration runs at unlock on every deployed box (5M records):
    # it writes only the full-text index's config, which no foreign key touches.
    key = os.urandom(32)
    monkeypatch.setattr(db, "MIGRATIONS", schema.MIGRATIONS[:-1])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION - 1)
    _archive_with_one_record(tmp_path / "a.db", key)
    monkeypatch.setattr(db, "MIGRATIONS", schema.MIGRATIONS)
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION)
    conn = db.connect(tmp_path / "a.db", key)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    db.migrate(conn)
    conn.set_trace_callback(None)
    assert db.schema_version(conn) == SCHEMA_VERSION
    assert statements and not any("foreign_key_check" in s.lower() for s in statements)
    conn.close()


def test_a_migration_writing_through_an_existing_trigger_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The trigger predates the migration (an earlier step made it): the step's own
    # text names only settings, the dangling record comes from the trigger.
    key = os.urandom(32)
    _archive_with_one_record(tmp_path / "a.db", key)
    conn = db.connect(tmp_path / "a.db", key)
    conn.execute(
        "CREATE TRIGGER settings_ai AFTER INSERT ON settings BEGIN"
        " INSERT INTO records (record_id, device_id, conversation_id, kind, client_id,"
        " sent_at, received_at, content_sha256, log_index)"
        " VALUES (x'cc', 999, 1, 'message', 'm3', 0, 0, x'cc', 2); END"
    )
    conn.close()
    migration = "INSERT INTO settings (key, value) VALUES ('practice', 'Cabinet Quesnel');"
    monkeypatch.setattr(db, "MIGRATIONS", [*schema.MIGRATIONS, migration])
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SchemaMigrationFailed, match="dangling reference in records"):
        db.open_archive_db(tmp_path / "a.db", key)
    conn = db.connect(tmp_path / "a.db", key)
    assert db.schema_version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    conn.close()


def test_byte_strings_bind_as_the_same_blobs_through_the_registered_adapter(
    tmp_path: Path,
) -> None:
    # db.py registers an adapter for bytes (the committer binds ~8 a record; without
    # one, sqlcipher3's look-up costs ~1.1 µs each): the values stored, compared and
    # read back must be exactly those of bytes bound as they are, empty ones included.
    conn = db.connect(tmp_path / "a.db", os.urandom(32))
    try:
        values = [b"", b"\x00", b"\x00\xff" * 40, os.urandom(1024), bytearray(b"\x01\x02")]
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
        assert conn.execute("SELECT v, typeof(v), length(v) FROM t ORDER BY rowid").fetchall() == [
            (bytes(v), "blob", len(v)) for v in values
        ]
        for value in values:  # a look-up by a bytes key finds its row (not NULL, not text)
            found = conn.execute("SELECT count(*) FROM t WHERE v = ?", (bytes(value),))
            assert found.fetchone() == (1,)
        assert conn.execute("SELECT ? IS NULL, ? = x''", (b"", b"")).fetchone() == (0, 1)
    finally:
        conn.close()
