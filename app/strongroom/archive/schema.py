"""The archive schema as a list of forward migrations.

Migration N brings `PRAGMA user_version` from N-1 to N. A migration runs in
one transaction with the version bump, so a crash mid-migration leaves the
previous version intact. Never edit a shipped migration: append a new one.
"""

from __future__ import annotations

# The ligatures French writes and unicode61 does not decompose, as migration 3's
# index spells them (search.fold_ligatures does the same to what a person types).
LIGATURES = {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"}


MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );

    CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        sign_key BLOB NOT NULL UNIQUE,          -- Ed25519 public key of the phone
        noise_key BLOB NOT NULL UNIQUE,         -- X25519 static public key of the phone
        name TEXT NOT NULL,
        owner TEXT NOT NULL,                    -- staff member the phone belongs to
        role TEXT NOT NULL DEFAULT 'staff',
        paired_at INTEGER NOT NULL,             -- ms since epoch
        pairing_method TEXT NOT NULL,           -- 'button' | 'qr' | 'test'
        last_seen INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT
    );
    CREATE INDEX devices_owner ON devices(owner);

    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        ref TEXT NOT NULL,                      -- the phone app's conversation id
        peer TEXT NOT NULL DEFAULT '',          -- the other party (client, colleague)
        created_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        closed_at INTEGER,
        UNIQUE (owner, ref)
    );

    -- Every signed record a phone pushed, as received. body is NULL once
    -- destroyed by retention; content_sha256 stays so the log still verifies.
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        record_id BLOB NOT NULL UNIQUE,         -- SHA-256 of the signed record bytes
        device_id INTEGER NOT NULL REFERENCES devices(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        kind TEXT NOT NULL,                     -- message | edit | deletion | receipt | attachment
        client_id TEXT NOT NULL,                -- the phone's own id for the record
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        body BLOB,                              -- canonical CBOR, as signed
        signature BLOB,                         -- Ed25519 by the device key
        content_sha256 BLOB NOT NULL,
        log_index INTEGER NOT NULL UNIQUE,
        destroyed_at INTEGER
    );
    CREATE INDEX records_conversation ON records(conversation_id, sent_at);
    CREATE INDEX records_device ON records(device_id, id);

    CREATE TABLE messages (
        record_id INTEGER PRIMARY KEY REFERENCES records(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        sender TEXT NOT NULL,
        text TEXT,
        sent_at INTEGER NOT NULL,
        has_attachment INTEGER NOT NULL DEFAULT 0,
        edits_client_id TEXT,                   -- set for edits and deletion markers
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_conversation ON messages(conversation_id, sent_at);

    CREATE TABLE receipts (
        record_id INTEGER PRIMARY KEY REFERENCES records(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        target_client_id TEXT NOT NULL,
        receipt TEXT NOT NULL CHECK (receipt IN ('delivered', 'read')),
        at INTEGER NOT NULL
    );
    CREATE INDEX receipts_target ON receipts(conversation_id, target_client_id);

    CREATE TABLE attachments (
        record_id INTEGER PRIMARY KEY REFERENCES records(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        message_client_id TEXT NOT NULL,
        blob_sha256 BLOB NOT NULL,
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        mime TEXT NOT NULL
    );
    CREATE INDEX attachments_blob ON attachments(blob_sha256);

    -- Encrypted attachment blobs. Each file's key is derived from the box's
    -- blob key and key_salt: erasing the salt (secure_delete) and the file
    -- shreds the blob even if a copy of the file survives somewhere.
    CREATE TABLE blobs (
        sha256 BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        key_salt BLOB,
        created_at INTEGER NOT NULL,
        log_index INTEGER NOT NULL UNIQUE,
        destroyed_at INTEGER
    );

    -- Uploads in progress, resumable by offset.
    CREATE TABLE uploads (
        sha256 BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        key_salt BLOB NOT NULL,
        started_at INTEGER NOT NULL
    );

    -- The tamper-evident log: leaf i commits to leaf_data (which holds a
    -- hash of the content, never the content itself).
    CREATE TABLE log_leaves (
        idx INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        leaf_data BLOB NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TABLE log_nodes (
        level INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        hash BLOB NOT NULL,
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID;
    CREATE TABLE tree_heads (
        tree_size INTEGER PRIMARY KEY,
        root_hash BLOB NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        signature BLOB NOT NULL
    );

    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}',
        log_index INTEGER NOT NULL UNIQUE
    );
    CREATE INDEX audit_action ON audit_events(action, at);

    -- Mail held for a device that is offline (end-to-end opaque to the box).
    CREATE TABLE mail (
        id INTEGER PRIMARY KEY,
        mail_id BLOB NOT NULL UNIQUE,
        sender_device INTEGER NOT NULL REFERENCES devices(id),
        recipient_owner TEXT NOT NULL,
        recipient_device INTEGER REFERENCES devices(id),
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        delivered_at INTEGER,
        acked_at INTEGER
    );
    CREATE INDEX mail_pending ON mail(recipient_owner, acked_at);

    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'archivist', 'auditor')),
        password_hash BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    -- Full-text index over message text. remove_diacritics 2 folds French
    -- accents so "réunion", "reunion" and "RÉUNION" all match.
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text,
        content='messages',
        content_rowid='record_id',
        tokenize="unicode61 remove_diacritics 2"
    );
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id, new.text);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text)
            VALUES ('delete', old.record_id, old.text);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text)
            VALUES ('delete', old.record_id, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id, new.text);
    END;
    """,
    # 2: the records office: retention policies (French presets), assignments,
    # legal holds, review decisions and destruction certificates. Idempotent,
    # so boxes that created these tables before the migration existed upgrade.
    """
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
""",
    # 3: ligatures folded in the full-text index. unicode61 folds accents and case
    # but keeps œ and æ as letters of their own, so "soeur" typed on a keyboard
    # without œ did not find "sœur". The index now holds the text with œ/æ
    # spelled out (the query is folded the same way: search.fold_ligatures);
    # the messages table keeps the text as signed. Nothing reads the index's
    # content back (no snippet/highlight), so the difference is only in tokens.
    # Written out, not generated: a migration's text never changes once shipped.
    """
    DROP TRIGGER messages_ai;
    DROP TRIGGER messages_ad;
    DROP TRIGGER messages_au;
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id,
            replace(replace(replace(replace(new.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(old.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(old.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id,
            replace(replace(replace(replace(new.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    INSERT INTO messages_fts(messages_fts) VALUES ('delete-all');
    INSERT INTO messages_fts(rowid, text)
        SELECT record_id,
            replace(replace(replace(replace(text, 'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE')
        FROM messages WHERE text IS NOT NULL;
    """,
    # 4: costs that stay flat as the archive grows (issue #20). Measured at 1M
    # records, each insert dirtied pages all over the file:
    # - the duplicate check was a UNIQUE index on record_id, a random 32-byte
    #   hash: every insert landed on a random page of a ~60 MB index. It is now
    #   records_dedup (device_id, sent_at, record_id): a phone's records arrive
    #   in time order, so inserts land at the end of its slice. A record is
    #   signed by one device key, so record_id stays unique in practice; the
    #   write path looks duplicates up by the same three columns. Dropping a
    #   column constraint needs a copy of the table (done once, here).
    # - records_conversation and messages_conversation were the same key
    #   (conversation_id, sent_at) twice: messages_conversation goes, queries
    #   reach a conversation's messages through records.
    # - the full-text index was fed by a per-row trigger inside a savepoint per
    #   record, one FTS5 segment per record. It is now fed once per group commit
    #   (schema.FTS_INDEX_PENDING, in the batch's own transaction). fts_state
    #   remembers up to which message row it is indexed; the delete and update
    #   triggers touch the index only for rows already in it.
    # - inserting a message scanned all attachments (no index on the pair it asks).
    # - FTS5 wrote leaves of up to 4050 bytes (its default pgsz), more than a
    #   SQLCipher page holds (4016 usable bytes, 3981 for one row): nine in ten
    #   index blocks took a second, overflow page. New segments use 3600.
    # Foreign keys are off while migrations run (db.migrate), and checked before
    # the commit; legacy_alter_table keeps the rename from rewriting other objects.
    """
    CREATE TABLE records_v4 (
        id INTEGER PRIMARY KEY,
        record_id BLOB NOT NULL,                -- SHA-256 of the signed record bytes
        device_id INTEGER NOT NULL REFERENCES devices(id),
        conversation_id INTEGER NOT NULL REFERENCES conversations(id),
        kind TEXT NOT NULL,
        client_id TEXT NOT NULL,
        sent_at INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        body BLOB,
        signature BLOB,
        content_sha256 BLOB NOT NULL,
        log_index INTEGER NOT NULL UNIQUE,
        destroyed_at INTEGER
    );
    INSERT INTO records_v4 (id, record_id, device_id, conversation_id, kind, client_id,
        sent_at, received_at, body, signature, content_sha256, log_index, destroyed_at)
        SELECT id, record_id, device_id, conversation_id, kind, client_id, sent_at,
            received_at, body, signature, content_sha256, log_index, destroyed_at
        FROM records ORDER BY id;
    DROP TABLE records;
    PRAGMA legacy_alter_table = ON;
    ALTER TABLE records_v4 RENAME TO records;
    PRAGMA legacy_alter_table = OFF;
    CREATE INDEX records_conversation ON records(conversation_id, sent_at);
    CREATE INDEX records_device ON records(device_id, id);
    CREATE UNIQUE INDEX records_dedup ON records(device_id, sent_at, record_id);

    DROP INDEX messages_conversation;
    CREATE INDEX attachments_message ON attachments(conversation_id, message_client_id);

    CREATE TABLE fts_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_upto INTEGER NOT NULL           -- messages.record_id indexed up to here
    );
    INSERT INTO fts_state (id, indexed_upto)
        SELECT 1, coalesce(max(record_id), 0) FROM messages;
    DROP TRIGGER messages_ai;
    DROP TRIGGER messages_ad;
    DROP TRIGGER messages_au;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages
    WHEN old.record_id <= (SELECT indexed_upto FROM fts_state) BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(old.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages
    WHEN old.record_id <= (SELECT indexed_upto FROM fts_state) BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(old.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id,
            replace(replace(replace(replace(new.text,
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('pgsz', 3600);
    """,
    # 5: the records office reachable end to end: matters (dossiers) with their
    # conversations and persons, holds on a matter with a case name, policy
    # assignments to a matter and a default policy, retired policies, and the
    # approvals a two-person ("four-eyes") destruction needs. legal_holds and
    # retention_assignments are rebuilt because SQLite cannot widen a CHECK.
    """
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
    """,
    # 6: who wrote in each conversation, kept as messages arrive, so the records office
    # (holds on a person, a matter's persons, retention) reads one row per conversation
    # and sender instead of scanning every message on each page and run. The trigger
    # writes nothing when the pair is already there (the usual case). Erasure removes a
    # pair once no message of that sender is left in the conversation (office/erasure.py).
    # records_destroyed holds destroyed records only (none at ingest, so it costs the
    # write path nothing): a hold's live records are then counted from two indexes,
    # all of a conversation's minus its destroyed ones, without reading record rows.
    # Written to apply whatever other migration lands beside it.
    """
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
    """,
    # 7: what was verified when (archive/verify_runs.py). One row per verify run,
    # full or incremental, with the signed head it verified (kept whole, signature
    # included, so the next incremental run re-checks the head it starts from) and
    # the older log range it re-read as its rotating sample.
    """
    CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),
        started_at INTEGER NOT NULL,            -- ms since epoch
        finished_at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        from_size INTEGER NOT NULL,             -- the verified head it started from (full: 0)
        tree_size INTEGER NOT NULL,             -- the signed head it verified
        root_hash BLOB,
        head_timestamp_ms INTEGER,
        head_signature BLOB,
        records INTEGER NOT NULL,               -- records whose content was checked
        leaves INTEGER NOT NULL,                -- log leaves recomputed
        sample_from INTEGER NOT NULL,           -- older log indexes re-checked: [from, to)
        sample_to INTEGER NOT NULL,
        sweep_started_at INTEGER,               -- when the sweep this sample belongs to began
        problems INTEGER NOT NULL,
        first_problems TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX verifications_kind ON verifications(kind, ok, id);
    """,
    # 8: the message text stored once (issue #20). A message's text was written twice,
    # inside the signed record (records.body) and again in messages.text, which the
    # full-text index reads: ~0.4 pages per record each at 5M. New rows leave
    # messages.text NULL and say where the text lies in the signed bytes instead
    # (text_at: 1-based byte position, text_len: bytes; record.text_span), read back
    # with plain SQL (MESSAGE_TEXT below), so every connection, trigger and tool sees it
    # without a registered function. Rows written before keep their text (no rewrite
    # of a 5 GB archive at unlock): both kinds read through coalesce(). A destroyed
    # record has no messages row (erasure deletes it before nulling the body), as before.
    # The index entry's 'delete' must name the exact text indexed: the triggers read it
    # from the body, which is still there when the row goes.
    # FTS5 merges: each batch writes one small segment, and FTS5 merged them four at a
    # time (automerge 4), so at 5M records every index entry had been rewritten once per
    # level, about seven times. Merging 8 at a time takes a third of the levels away
    # (log8 against log4). A query reads up to 7 segments per level instead of 3; 16 at
    # a time saved a little more (docs/benchmarks.md) but doubled the segments a search
    # reads again. The value is kept in the index's own config table.
    """
    ALTER TABLE messages ADD COLUMN text_at INTEGER;
    ALTER TABLE messages ADD COLUMN text_len INTEGER;
    DROP TRIGGER messages_ad;
    DROP TRIGGER messages_au;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages
    WHEN old.record_id <= (SELECT indexed_upto FROM fts_state) BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(coalesce(old.text,
                (SELECT CAST(substr(body, old.text_at, old.text_len) AS TEXT)
                 FROM records WHERE id = old.record_id)),
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text, text_at, text_len ON messages
    WHEN old.record_id <= (SELECT indexed_upto FROM fts_state) BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.record_id,
            replace(replace(replace(replace(coalesce(old.text,
                (SELECT CAST(substr(body, old.text_at, old.text_len) AS TEXT)
                 FROM records WHERE id = old.record_id)),
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
        INSERT INTO messages_fts(rowid, text) VALUES (new.record_id,
            replace(replace(replace(replace(coalesce(new.text,
                (SELECT CAST(substr(body, new.text_at, new.text_len) AS TEXT)
                 FROM records WHERE id = new.record_id)),
                'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'));
    END;
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 8);
    """,
    # 9: costs that stay flat (issue #20). Verify checks every device event
    # (pairings, revocations) against the devices table each night, and found them by
    # reading the whole log (1.6 s at 5M leaves). A partial index holds the device
    # leaves only: records, audit events and blobs never enter it, so ingest writes
    # nothing more. `verifications.purpose` says why a run was made (the nightly
    # schedule, someone's "check now", the GDPR register, the check after a restore),
    # so the Integrity page and `verify --status` list every check the box made; runs
    # kept before say '' (not known).
    """
    CREATE INDEX IF NOT EXISTS log_leaves_device ON log_leaves(idx) WHERE kind = 'device';
    ALTER TABLE verifications ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
    """,
    # 10: the conversation index as an LSM (issue #20). records_conversation (conversation,
    # sent_at) took a new entry on each active conversation's own leaf: at 5M records a
    # group commit of ~550 records dirtied ~300 of its leaves, written again at each
    # checkpoint (3.7 KiB per 1 KiB record, docs/benchmarks.md). Its keys now live in two
    # tables: conv_recent takes each new record's key in arrival order (its rowid is the
    # record's: appends at the end), and archive/conv_keys.py folds it into conv_folded
    # (the same keys, in conversation order) every FOLD_AT records, inside a batch's
    # transaction, so a key is in exactly one of the two at every commit. Readers read
    # both (conv_keys.py); conv_recent's index on (conversation, sent_at) serves them.
    # A trigger fills conv_recent, as the index filled itself: every writer of records
    # (the write path, the bench corpus builder, a test) keeps it whole, with no extra
    # statement per record on the committer's thread. Records are never deleted, nor
    # their conversation or date changed, so no other trigger is needed. Destroyed
    # records keep their keys, as they kept their index entries: an export lists them
    # as gaps; live counts subtract records_destroyed, as before. No foreign keys: they
    # are an index's entries (a check per insert, and at this step over 5M rows).
    """
    CREATE TABLE conv_folded (
        conversation_id INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        record_id INTEGER NOT NULL,             -- records.id
        PRIMARY KEY (conversation_id, sent_at, record_id)
    ) WITHOUT ROWID;
    INSERT INTO conv_folded (conversation_id, sent_at, record_id)
        SELECT conversation_id, sent_at, id FROM records INDEXED BY records_conversation
        ORDER BY conversation_id, sent_at, id;
    DROP INDEX records_conversation;
    CREATE TABLE conv_recent (
        record_id INTEGER PRIMARY KEY,          -- records.id: arrival order
        conversation_id INTEGER NOT NULL,
        sent_at INTEGER NOT NULL
    );
    CREATE INDEX conv_recent_conversation ON conv_recent(conversation_id, sent_at);
    CREATE TRIGGER records_conversation_key AFTER INSERT ON records BEGIN
        INSERT INTO conv_recent (record_id, conversation_id, sent_at)
            VALUES (new.id, new.conversation_id, new.sent_at);
    END;
    """,
    # 11: night jobs and person look-ups that stay flat (issue #20).
    # conv_live: per conversation, the date (sent_at) of its oldest live record (NULL,
    # or no row, when it has none). Retention's plan probes the conversation index only
    # where something can be due (before: one probe per conversation each night, a page
    # read each at 5M). A new record lowers it (trigger); the destruction of the record
    # it names moves it to the next live key (trigger; the search starts there, so each
    # destroyed key is passed over once). Its index on the date gives the night only the
    # conversations with a record old enough to be due under any policy. Its own table,
    # not a column of conversations: a step that writes conversations re-checks every
    # foreign key pointing at them (migration_fk: all of records, 20 s at 5M), and no key
    # points at this one.
    # Person look-ups by name: conversations by other party, conversation_senders by
    # sender (an index each; both tables hold one row per conversation, or conversation
    # and sender, so they cost nothing per record). senders_removed keeps every pair that
    # left conversation_senders (erasure's, and any other delete or change): an export by
    # person re-checks those against the messages, instead of reading every message.
    """
    CREATE TABLE conv_live (
        conversation_id INTEGER PRIMARY KEY,    -- conversations.id
        live_from INTEGER                       -- sent_at of its oldest live record
    );
    INSERT INTO conv_live (conversation_id, live_from)
        SELECT c.id, (SELECT min(sent_at) FROM (
            SELECT * FROM (SELECT k.sent_at FROM conv_folded k
                WHERE k.conversation_id = c.id AND NOT EXISTS (
                    SELECT 1 FROM records d INDEXED BY records_destroyed
                    WHERE d.conversation_id = k.conversation_id AND d.sent_at = k.sent_at
                    AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)
                ORDER BY k.sent_at LIMIT 1)
            UNION ALL
            SELECT * FROM (SELECT k.sent_at FROM conv_recent k
                WHERE k.conversation_id = c.id AND NOT EXISTS (
                    SELECT 1 FROM records d INDEXED BY records_destroyed
                    WHERE d.conversation_id = k.conversation_id AND d.sent_at = k.sent_at
                    AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)
                ORDER BY k.sent_at LIMIT 1)))
        FROM conversations c ORDER BY c.id;
    CREATE INDEX conv_live_from ON conv_live(live_from);
    CREATE TRIGGER records_live_from AFTER INSERT ON records BEGIN
        INSERT INTO conv_live (conversation_id, live_from)
            VALUES (new.conversation_id, new.sent_at)
            ON CONFLICT (conversation_id) DO UPDATE SET live_from = excluded.live_from
            WHERE live_from IS NULL OR live_from > excluded.live_from;
    END;
    CREATE TRIGGER records_live_from_destroyed AFTER UPDATE OF destroyed_at ON records
    WHEN old.destroyed_at IS NULL AND new.destroyed_at IS NOT NULL BEGIN
        UPDATE conv_live SET live_from = (
            SELECT min(sent_at) FROM (
                SELECT * FROM (SELECT k.sent_at FROM conv_folded k
                    WHERE k.conversation_id = new.conversation_id AND k.sent_at >= new.sent_at
                    AND NOT EXISTS (
                        SELECT 1 FROM records d INDEXED BY records_destroyed
                        WHERE d.conversation_id = k.conversation_id AND d.sent_at = k.sent_at
                        AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)
                    ORDER BY k.sent_at LIMIT 1)
                UNION ALL
                SELECT * FROM (SELECT k.sent_at FROM conv_recent k
                    WHERE k.conversation_id = new.conversation_id AND k.sent_at >= new.sent_at
                    AND NOT EXISTS (
                        SELECT 1 FROM records d INDEXED BY records_destroyed
                        WHERE d.conversation_id = k.conversation_id AND d.sent_at = k.sent_at
                        AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)
                    ORDER BY k.sent_at LIMIT 1)))
        WHERE conversation_id = new.conversation_id AND live_from = new.sent_at;
    END;
    CREATE INDEX conversations_peer ON conversations(peer, owner);
    CREATE INDEX conversation_senders_sender ON conversation_senders(sender);
    CREATE TABLE senders_removed (
        sender TEXT NOT NULL,
        conversation_id INTEGER NOT NULL,
        PRIMARY KEY (sender, conversation_id)
    ) WITHOUT ROWID;
    CREATE TRIGGER conversation_senders_removed AFTER DELETE ON conversation_senders BEGIN
        INSERT OR IGNORE INTO senders_removed (sender, conversation_id)
            VALUES (old.sender, old.conversation_id);
    END;
    CREATE TRIGGER conversation_senders_changed AFTER UPDATE ON conversation_senders BEGIN
        INSERT OR IGNORE INTO senders_removed (sender, conversation_id)
            VALUES (old.sender, old.conversation_id);
    END;
    """,
    # 12: ingest that stays flat at 5M records (issue #20 item 1). FTS5's merges were the
    # largest part of what a record costs more at 5M than at empty: with merging off, a
    # 20,000-record ingest into a copy of the 5M corpus cost ~17 µs less CPU per record,
    # against ~30 µs between 5M and empty. FTS5 paces its merges by the number of levels
    # (each flush does about levels x its own pages of merge work while a merge is due),
    # and every index entry is rewritten once per level it climbs: merging 16 segments
    # at a time instead of 8 takes about a quarter of the levels away at 5M (log16
    # against log8 of the batch segments), and merges a level less often. crisismerge
    # (FTS5's forced merge of a whole level inside one commit, cascading up; default 16)
    # goes to 64: at 16 it would fire as soon as a level reaches automerge's threshold,
    # and a level of the 5M corpus holds up to ~70,000 pages. The price is on the read
    # side: a query reads about twice the segments (docs/benchmarks.md: search after
    # 100,000 more records at 5M, p50 ~1.3 -> ~8 ms on a loaded machine; aim < 50 ms).
    # Existing segments stay as they are: this only changes which merges come next.
    # usermerge 8: the group committer merges, while no push waits, each level that
    # holds 8 segments (archive/fts_merge.py), so an idle box's searches read about as
    # many segments as at schema 11 while the ack path merges 16 at a time.
    """
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 16);
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('crisismerge', 64);
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('usermerge', 8);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

# A message's text, for a query joining `messages m` and `records r` (migration 8):
# rows written since keep it inside the signed record only, older rows in messages.text.
# NULL for a message without text (a deletion marker).
MESSAGE_TEXT = "coalesce(m.text, CAST(substr(r.body, m.text_at, m.text_len) AS TEXT))"

# Feeding the full-text index once per group commit (migration 4 onwards), in
# the batch's transaction: every message row written since the last batch, as
# one INSERT ... SELECT (one FTS5 segment for the batch, not one per record).
# A crash anywhere in the batch rolls back the rows and their index entries
# together; a row is never indexed twice because fts_state moves in the same
# transaction. The text is folded as migration 3 folds it, and read from the
# signed record as MESSAGE_TEXT reads it (migration 8; the record row was just
# written, so it is cached).
# S608: built from constants only (MESSAGE_TEXT above).
FTS_INDEX_PENDING = (
    "INSERT INTO messages_fts(rowid, text)"  # noqa: S608
    " SELECT m.record_id, replace(replace(replace(replace("
    f"{MESSAGE_TEXT},"
    " 'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE')"
    " FROM messages m JOIN records r ON r.id = m.record_id"
    " WHERE m.record_id > (SELECT indexed_upto FROM fts_state)"
    " AND (m.text IS NOT NULL OR m.text_at IS NOT NULL)"
)
# The same feed for an archive before migration 8 (the text in messages.text only),
# which tests build to check what the migration does with rows written the old way.
FTS_INDEX_PENDING_V4 = (
    "INSERT INTO messages_fts(rowid, text)"
    " SELECT record_id, replace(replace(replace(replace(text,"
    " 'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE')"
    " FROM messages WHERE record_id > (SELECT indexed_upto FROM fts_state) AND text IS NOT NULL"
)
FTS_MARK_INDEXED = (
    "UPDATE fts_state SET indexed_upto ="
    " max(indexed_upto, (SELECT coalesce(max(record_id), 0) FROM messages))"
)
