"""The full-text index's migrations: ligatures, the text stored once, merge pacing.

Shipped text: never edit a migration here, append a new one (archive/schema.py).
"""

from __future__ import annotations

# 3: ligatures folded in the full-text index. unicode61 folds accents and case
# but keeps œ and æ as letters of their own, so "soeur" typed on a keyboard
# without œ did not find "sœur". The index now holds the text with œ/æ
# spelled out (the query is folded the same way: search.fold_ligatures);
# the messages table keeps the text as signed. Nothing reads the index's
# content back (no snippet/highlight), so the difference is only in tokens.
# Written out, not generated: a migration's text never changes once shipped.
MIGRATION_3 = """
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
    """

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
MIGRATION_8 = """
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
    """

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
MIGRATION_12 = """
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 16);
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('crisismerge', 64);
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('usermerge', 8);
    """
