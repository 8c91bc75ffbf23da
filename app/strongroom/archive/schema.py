"""The archive schema as a list of forward migrations.

Migration N brings `PRAGMA user_version` from N-1 to N. A migration runs in
one transaction with the version bump, so a crash mid-migration leaves the
previous version intact. Never edit a shipped migration: append a new one.
The shipped ones' SQL lives in archive/migrations/, one module per group (the
first schema, the records office, the full-text index, flat costs, verify); this
list gives their order.
"""

from __future__ import annotations

from strongroom.archive.migrations.first import MIGRATION_1
from strongroom.archive.migrations.flat_costs import MIGRATION_4, MIGRATION_10, MIGRATION_11
from strongroom.archive.migrations.fulltext import MIGRATION_3, MIGRATION_8, MIGRATION_12
from strongroom.archive.migrations.office import MIGRATION_2, MIGRATION_5, MIGRATION_6
from strongroom.archive.migrations.verify import MIGRATION_7, MIGRATION_9

# The ligatures French writes and unicode61 does not decompose, as migration 3's
# index spells them (search.fold_ligatures does the same to what a person types).
LIGATURES = {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"}


MIGRATIONS: list[str] = [
    MIGRATION_1,  # the first schema
    MIGRATION_2,  # the records office: retention policies, holds, certificates
    MIGRATION_3,  # ligatures folded in the full-text index
    MIGRATION_4,  # costs that stay flat: records_dedup, FTS fed per group commit
    MIGRATION_5,  # matters, holds on a matter, four-eyes approvals
    MIGRATION_6,  # conversation_senders, records_destroyed
    MIGRATION_7,  # verifications: what was verified when
    MIGRATION_8,  # the message text stored once; automerge 8
    MIGRATION_9,  # the device leaves' index; verifications.purpose
    MIGRATION_10,  # the conversation index as an LSM (conv_recent, conv_folded)
    MIGRATION_11,  # conv_live; person look-ups by name
    MIGRATION_12,  # FTS merge pacing: automerge 16, crisismerge 64, usermerge 8
]

SCHEMA_VERSION = len(MIGRATIONS)

# A message's text, for a query joining `messages m` and `records r` (migration 8):
# rows written since keep it inside the signed record only, older rows in messages.text.
# NULL for a message without text (a deletion marker).
MESSAGE_TEXT = "coalesce(m.text, CAST(substr(r.body, m.text_at, m.text_len) AS TEXT))"

# Whether a message has an attachment, for the same join: the attachments pushed for
# it (by conversation and the phone's id, an index seek on attachments_message).
# messages.has_attachment is NOT maintained (set only when the attachment came first:
# setting it when the attachment comes after would need the message by the phone's id,
# which records has no index for): never read it, ask this. Search's filter alone
# starts from the attachments table when that reads less (search._attached_messages).
MESSAGE_HAS_ATTACHMENT = (
    "EXISTS (SELECT 1 FROM attachments a"
    " WHERE a.conversation_id = m.conversation_id AND a.message_client_id = r.client_id)"
)

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
