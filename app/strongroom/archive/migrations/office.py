"""The records office's migrations: retention, holds, matters, who wrote where.

Shipped text: never edit a migration here, append a new one (archive/schema.py).
"""

from __future__ import annotations

# 2: the records office: retention policies (French presets), assignments,
# legal holds, review decisions and destruction certificates. Idempotent,
# so boxes that created these tables before the migration existed upgrade.
MIGRATION_2 = """
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

# 5: the records office reachable end to end: matters (dossiers) with their
# conversations and persons, holds on a matter with a case name, policy
# assignments to a matter and a default policy, retired policies, and the
# approvals a two-person ("four-eyes") destruction needs. legal_holds and
# retention_assignments are rebuilt because SQLite cannot widen a CHECK.
MIGRATION_5 = """
    CREATE TABLE matters (
        id INTEGER PRIMARY KEY,
        ref TEXT NOT NULL UNIQUE,               -- the practice's file number
        client TEXT NOT NULL DEFAULT '',
        responsible TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        closed_at INTEGER                       -- the "end of matter" start event
    );
    CREATE TABLE matter_conversations (
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        PRIMARY KEY (matter_id, conversation_id)
    ) WITHOUT ROWID;
    CREATE TABLE matter_persons (
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        person TEXT NOT NULL,                   -- as typed (matched loosely, see facts)
        PRIMARY KEY (matter_id, person)
    ) WITHOUT ROWID;

    CREATE TABLE legal_holds_v4 (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL
            CHECK (scope IN ('conversation', 'person', 'date_range', 'matter')),
        conversation_id INTEGER REFERENCES conversations(id),
        person TEXT,
        from_ms INTEGER,
        to_ms INTEGER,
        matter_id INTEGER REFERENCES matters(id),
        case_name TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL,
        placed_by TEXT NOT NULL,
        placed_at INTEGER NOT NULL,
        lifted_by TEXT,
        lifted_at INTEGER,
        lift_reason TEXT
    );
    INSERT INTO legal_holds_v4 (id, scope, conversation_id, person, from_ms, to_ms, reason,
        placed_by, placed_at, lifted_by, lifted_at, lift_reason)
        SELECT id, scope, conversation_id, person, from_ms, to_ms, reason, placed_by,
            placed_at, lifted_by, lifted_at, lift_reason FROM legal_holds;
    DROP TABLE legal_holds;
    ALTER TABLE legal_holds_v4 RENAME TO legal_holds;
    CREATE INDEX legal_holds_active ON legal_holds(lifted_at);

    CREATE TABLE retention_assignments_v4 (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL
            CHECK (scope IN ('conversation', 'matter', 'contact', 'owner', 'default')),
        subject TEXT NOT NULL,
        policy_id INTEGER NOT NULL REFERENCES retention_policies(id),
        assigned_by TEXT NOT NULL,
        assigned_at INTEGER NOT NULL,
        UNIQUE (scope, subject)
    );
    INSERT INTO retention_assignments_v4
        SELECT id, scope, subject, policy_id, assigned_by, assigned_at
        FROM retention_assignments;
    DROP TABLE retention_assignments;
    ALTER TABLE retention_assignments_v4 RENAME TO retention_assignments;

    ALTER TABLE retention_policies ADD COLUMN retired_at INTEGER;

    CREATE TABLE retention_approvals (
        record_id INTEGER NOT NULL REFERENCES records(id),
        approver TEXT NOT NULL,
        approved_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (record_id, approver)
    ) WITHOUT ROWID;
    """

# 6: who wrote in each conversation, kept as messages arrive, so the records office
# (holds on a person, a matter's persons, retention) reads one row per conversation
# and sender instead of scanning every message on each page and run. The trigger
# writes nothing when the pair is already there (the usual case). Erasure removes a
# pair once no message of that sender is left in the conversation (office/erasure.py).
# records_destroyed holds destroyed records only (none at ingest, so it costs the
# write path nothing): a hold's live records are then counted from two indexes,
# all of a conversation's minus its destroyed ones, without reading record rows.
# Written to apply whatever other migration lands beside it.
MIGRATION_6 = """
    CREATE TABLE IF NOT EXISTS conversation_senders (
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        sender TEXT NOT NULL,
        PRIMARY KEY (conversation_id, sender)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO conversation_senders (conversation_id, sender)
        SELECT DISTINCT conversation_id, sender FROM messages;
    CREATE TRIGGER IF NOT EXISTS messages_sender AFTER INSERT ON messages BEGIN
        INSERT OR IGNORE INTO conversation_senders (conversation_id, sender)
            VALUES (new.conversation_id, new.sender);
    END;
    CREATE INDEX IF NOT EXISTS records_destroyed ON records(conversation_id, sent_at)
        WHERE destroyed_at IS NOT NULL;
    """
