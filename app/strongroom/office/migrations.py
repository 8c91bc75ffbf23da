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

OFFICE_MIGRATION = """
CREATE TABLE IF NOT EXISTS retention_policies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    duration_value INTEGER NOT NULL CHECK (duration_value > 0),
    duration_unit TEXT NOT NULL CHECK (duration_unit IN ('days', 'months', 'years')),
    start_event TEXT NOT NULL
        CHECK (start_event IN ('record_date', 'last_activity', 'matter_closed')),
    action TEXT NOT NULL CHECK (action IN ('destroy', 'review')),
    legal_basis TEXT NOT NULL DEFAULT '',
    preset TEXT UNIQUE,                      -- the preset key it was shipped as, if any
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Which policy governs which records: a conversation, a contact (conversations.peer)
-- or a device owner (conversations.owner). The most specific assignment wins.
CREATE TABLE IF NOT EXISTS retention_assignments (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('conversation', 'contact', 'owner')),
    subject TEXT NOT NULL,
    policy_id INTEGER NOT NULL REFERENCES retention_policies(id),
    assigned_by TEXT NOT NULL,
    assigned_at INTEGER NOT NULL,
    UNIQUE (scope, subject)
);

CREATE TABLE IF NOT EXISTS legal_holds (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('conversation', 'person', 'date_range')),
    conversation_id INTEGER REFERENCES conversations(id),
    person TEXT,
    from_ms INTEGER,
    to_ms INTEGER,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    lifted_by TEXT,
    lifted_at INTEGER,
    lift_reason TEXT
);
CREATE INDEX IF NOT EXISTS legal_holds_active ON legal_holds(lifted_at);

-- A reviewer decided to keep a record past its due date.
CREATE TABLE IF NOT EXISTS retention_keeps (
    record_id INTEGER PRIMARY KEY REFERENCES records(id),
    keep_until INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at INTEGER NOT NULL,
    reason TEXT NOT NULL
);

-- Signed destruction certificates, kept for download; each is also an audit leaf.
CREATE TABLE IF NOT EXISTS destruction_certificates (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    approver TEXT NOT NULL,
    record_count INTEGER NOT NULL,
    certificate BLOB NOT NULL,               -- the exact JSON bytes signed
    signature BLOB NOT NULL,                 -- Ed25519 by the box key
    log_index INTEGER NOT NULL UNIQUE        -- the audit event that logged it
);

INSERT OR IGNORE INTO retention_policies
    (name, duration_value, duration_unit, start_event, action, legal_basis, preset,
     created_at, updated_at)
VALUES
    ('Dossier médical', 20, 'years', 'last_activity', 'review',
     'Code de la santé publique, art. R.1112-7 : 20 ans à compter de la dernière consultation',
     'dossier-medical', 0, 0),
    ('Dossier d''avocat', 5, 'years', 'matter_closed', 'review',
     'Code civil, art. 2225 : responsabilité de l''avocat prescrite 5 ans après la fin de'
     || ' la mission',
     'dossier-avocat', 0, 0),
    ('Correspondance générale', 5, 'years', 'record_date', 'destroy',
     'Code civil, art. 2224 : prescription de droit commun de 5 ans',
     'correspondance-generale', 0, 0),
    ('Pièces comptables', 10, 'years', 'record_date', 'destroy',
     'Code de commerce, art. L.123-22 : pièces justificatives conservées 10 ans',
     'pieces-comptables', 0, 0);
"""

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
