"""Opening the SQLCipher archive file: key, durability pragmas, migrations.

The key is the raw 256-bit archive key derived from the box identity, passed
as `x'…'` so SQLCipher skips its PBKDF2 (opening takes milliseconds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import cast

import sqlcipher3

from strongroom.archive.errors import SchemaMigrationFailed, SchemaTooNew, WrongArchiveKey
from strongroom.archive.migration_fk import dangling_reference
from strongroom.archive.schema import MIGRATIONS, SCHEMA_VERSION

# sqlcipher3 mirrors the stdlib sqlite3 API; we type against the stdlib's stubs.
Connection = sqlite3.Connection
# Told (found, target, connection) once, before the first step of a migration runs:
# the box shows "updating" and may interrupt() the connection to stop early.
MigrationHook = Callable[[int, int, Connection], None]

KEY_BYTES = 32
# How long a statement waits for another connection's lock before SQLITE_BUSY.
BUSY_TIMEOUT_S = 30.0
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26

# Checkpoint the WAL into the database file once it holds this many pages
# (~160 MiB), not at SQLite's default of 1,000 (4 MiB). A group commit of ~500
# records writes ~700-1,200 pages to the WAL, so the default copied every
# commit's pages into the file right after it: each page was written twice. Many
# of them (index and table tails, FTS segments, the log's frontier) are written
# again by the next commits, and a checkpoint writes each of them once. Measured
# (docs/benchmarks.md): at 1M records 1,000 -> 10,000 pages took 14.4 -> 11.5 KiB
# handed to write() per 1 KiB record; at 5M, where each of 2,000 interleaved
# conversations has a conversation-index leaf of its own, 10,000 -> 40,000 took
# 12.7 -> 11.6 KiB, and the bytes the kernel sent to the disk 23 -> 15 KiB. The
# price: the WAL file keeps its largest size (~160 MiB on disk), recovery after a
# crash reads up to that much. While a group committer runs, the checkpoint is
# not the commit's: a thread of its own runs it (archive/checkpointer.py), and
# the writer only checkpoints itself at twice this size, a bound.
WAL_AUTOCHECKPOINT_PAGES = 40_000

# A `bytes` statement parameter goes through sqlcipher3's adapter look-up (its fast
# path skips only int, float, str and bytearray), which costs ~1.1 µs a parameter when
# no adapter is found: a row of four byte strings bound in 6.2 instead of 1.9 µs. A
# pushed record binds about eight on the committer (its id, body, signature and
# content hash, its log leaf, Merkle nodes, the duplicate look-up). With an adapter
# registered the look-up finds it at once; a memoryview binds the same blob, no copy
# (the values stored and compared are the same: tests/test_archive_db.py).
sqlcipher3.register_adapter(bytes, memoryview)


def _key_pragma(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise ValueError("the archive key must be 32 bytes")
    return f"PRAGMA key = \"x'{key.hex()}'\""


def connect(path: Path, key: bytes, *, readonly: bool = False) -> Connection:
    """Open (or create) the archive; raise WrongArchiveKey if the key is wrong."""
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = cast(
        Connection,
        sqlcipher3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        ),
    )
    try:
        # SQLCipher otherwise prints decryption failures to stderr itself.
        conn.execute("PRAGMA cipher_log_level = NONE")
        conn.execute(_key_pragma(key))
        # Fail here, on a clear error, rather than at the first query.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        if _not_about_the_key(exc):  # locked, unreadable, read-only: said as it is
            raise
        raise WrongArchiveKey(
            f"cannot open {path.name}: wrong key, not an archive, or a damaged file header"
        ) from exc
    try:
        _tune(conn, readonly)
    except BaseException:
        conn.close()
        raise
    return conn


def _not_about_the_key(exc: sqlcipher3.DatabaseError) -> bool:
    # A wrong key reads as SQLITE_NOTADB (page 1 fails its MAC), a truncated file as
    # SQLITE_CORRUPT; a locked, unopenable or read-only file is none of these and
    # must not be reported as "wrong key" (archive/open_failure.py tells them apart).
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF not in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _tune(conn: Connection, readonly: bool) -> None:
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a commit returns only once the WAL is fsynced. An ack means durable.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Freed pages are zeroed, so destroyed records do not linger in the file.
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA temp_store = MEMORY")
    # 16 MiB of page cache per connection (the default is 2 MiB). Since migration 4
    # inserts land at the ends of ordered indexes; the cache serves readers and the
    # per-conversation index. Not a fix for growth: it would break the memory aim.
    conn.execute("PRAGMA cache_size = -16384")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")


def schema_version(conn: Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: Connection, on_start: MigrationHook | None = None) -> int:
    """Bring the schema forward to SCHEMA_VERSION; return the version found.

    Each step is one transaction with its version bump: a crash, a kill or an
    interrupt() mid-step leaves the previous version whole, and the next open
    runs that step again. A step may take minutes on a Pi (migration 9 builds an
    index over every record): callers on the event loop run this in a thread.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(f"archive schema {found} is newer than this software ({SCHEMA_VERSION})")
    if found == SCHEMA_VERSION:
        return found
    if on_start is not None:
        on_start(found, SCHEMA_VERSION, conn)
    # A migration may copy a table others refer to (migration 4 copies records):
    # foreign keys are off while it runs (the pragma is a no-op inside a
    # transaction), and checked before each step commits.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for version in range(found + 1, SCHEMA_VERSION + 1):
            _migrate_step(conn, version)
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    return found


def _migrate_step(conn: Connection, version: int) -> None:
    script = MIGRATIONS[version - 1]
    # executescript commits implicitly; wrap the whole step ourselves so the
    # version bump and the DDL land together or not at all.
    statements = f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};"
    try:
        conn.executescript(statements)
        # Foreign keys are off: check the tables this step wrote, and those pointing
        # at them (migration_fk), not every row of the file at unlock.
        broken = dangling_reference(conn, script)
        if broken is not None:
            raise SchemaMigrationFailed(
                f"migration {version} left a dangling reference in {broken}; nothing changed"
            )
        conn.execute("COMMIT")
    except (sqlcipher3.Error, sqlite3.Error, SchemaMigrationFailed):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_archive_db(path: Path, key: bytes, on_migrate: MigrationHook | None = None) -> Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path, key)
    try:
        migrate(conn, on_migrate)
        _probe_write(conn)
    except BaseException:
        conn.close()  # a refused or failed migration must not leak an open handle
        raise
    return conn


def _probe_write(conn: Connection) -> None:
    """Raise now what the first write would raise (SQLITE_READONLY, SQLITE_BUSY).

    A file SQLite could open only read-only (mode 0400, a read-only mount) opens
    without complaint, and BEGIN IMMEDIATE succeeds on it in WAL mode: only a
    write fails. A database another program holds locked makes every commit wait
    and fail. Rewriting user_version with its own value, rolled back, writes
    nothing to the file and lets the unlock say so instead of the first push.
    """
    version = schema_version(conn)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
