"""The records office's tables, as one schema migration.

`OFFICE_MIGRATION` is meant to be appended to `archive.schema.MIGRATIONS` (as
migration 2). It is idempotent (IF NOT EXISTS, INSERT OR IGNORE) so a box that
already ran `ensure_office_schema` upgrades cleanly. Until it is wired in,
`ensure_office_schema(conn)` creates the tables on an open archive.

The preset rows mirror `policies.PRESETS` (a test keeps them equal); shipped
rows are never edited here: a changed preset is a new migration.
"""

from __future__ import annotations

import sqlite3

import sqlcipher3

from strongroom.archive.db import Connection
from strongroom.archive.schema import MIGRATIONS

# The SQL lives in the archive's migration chain (migration 2); this name stays
# for ensure_office_schema and the tests that compare presets.
OFFICE_MIGRATION = MIGRATIONS[1]

OFFICE_TABLES = (
    "retention_policies",
    "retention_assignments",
    "legal_holds",
    "retention_keeps",
    "destruction_certificates",
)


def ensure_office_schema(conn: Connection) -> None:
    """Create the office tables on an open archive if missing (until migration 2 lands)."""
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        " AND name = 'destruction_certificates'"
    ).fetchone()
    if int(row[0]) == 1:
        return
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{OFFICE_MIGRATION}\nCOMMIT;")
    except (sqlcipher3.Error, sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
