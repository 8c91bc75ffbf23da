"""The full verify's check of `conv_live` (schema 11): each conversation's oldest live
record date, which retention's nightly plan trusts to skip conversations with nothing
old enough to be due. A date later than the truth would keep due records past their
retention without a word; so the verify recomputes it from the conversation index
(whose keys it checks against the records: conv_keys.index_problems), one index seek
per conversation plus one per destroyed key passed over, and names every difference."""

from __future__ import annotations

from strongroom.archive.db import Connection
from strongroom.archive.verify_records import VerifyReport

# Conversations named one by one in a report; the rest are counted.
_NAMED = 20

# The first live key of conversation `c.id` in one table of the conversation index.
_FIRST_LIVE = (
    "SELECT * FROM (SELECT k.sent_at FROM {keys} k"
    " WHERE k.conversation_id = c.id AND NOT EXISTS ("
    " SELECT 1 FROM records d INDEXED BY records_destroyed"
    " WHERE d.conversation_id = k.conversation_id AND d.sent_at = k.sent_at"
    " AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)"
    " ORDER BY k.sent_at LIMIT 1)"
)
_DIFFERENCES = (
    "SELECT c.id, l.live_from, t.oldest FROM conversations c"  # noqa: S608 (constants only)
    " LEFT JOIN conv_live l ON l.conversation_id = c.id"
    " JOIN (SELECT c.id AS cid, (SELECT min(sent_at) FROM ("
    + _FIRST_LIVE.format(keys="conv_folded")
    + " UNION ALL "
    + _FIRST_LIVE.format(keys="conv_recent")
    + ")) AS oldest FROM conversations c) t ON t.cid = c.id"
    " WHERE l.live_from IS NOT t.oldest ORDER BY c.id"
)


def verify_conv_live(conn: Connection, report: VerifyReport) -> None:
    """Every conversation's `conv_live` date is its oldest live record's (NULL: none)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'conv_live'").fetchone() is None:
        return  # an archive opened at an older schema version
    differences = conn.execute(_DIFFERENCES).fetchall()
    for cid, kept, oldest in differences[:_NAMED]:
        report.problem(
            f"conversation {cid}: conv_live dates its oldest live record {kept},"
            f" but its keys say {oldest}: retention's plan would misjudge it"
        )
    if len(differences) > _NAMED:
        report.problem(f"{len(differences) - _NAMED} more conversations: conv_live differs")


__all__ = ["verify_conv_live"]
