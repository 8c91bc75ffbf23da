"""The first schema (migration 1): the tables a box was born with.

Shipped text: never edit a migration here, append a new one (archive/schema.py).
"""

from __future__ import annotations

# 1: the first schema. messages.has_attachment is no longer maintained (a later
# attachment leaves it 0): never read it, see schema.MESSAGE_HAS_ATTACHMENT.
MIGRATION_1 = """
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
    """
