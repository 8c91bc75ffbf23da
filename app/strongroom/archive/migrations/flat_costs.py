"""Migrations that keep ingest and night jobs flat as the archive grows (issue #20).

Shipped text: never edit a migration here, append a new one (archive/schema.py).
"""

from __future__ import annotations

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
MIGRATION_4 = """
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
    """

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
MIGRATION_10 = """
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
    """

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
MIGRATION_11 = """
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
    """
