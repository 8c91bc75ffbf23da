"""Read-side queries (never write here), by what callers use them for:

- archive/search.py: message search (folded words, filters, a conversation's messages);
- archive/listings.py: conversations, devices, a record, its receipts and attachments;
- archive/audit_reads.py: the audit trail and the dashboard's counts.

This module keeps the names callers imported from it before the split; new code
imports from the module it needs.
"""

from __future__ import annotations

from strongroom.archive.audit_reads import (
    DASHBOARD_COUNTS,
    AuditRow,
    audit_events,
    counts,
    last_audit_event,
)
from strongroom.archive.listings import (
    AttachmentRow,
    ConversationRow,
    DeviceRow,
    ReceiptRow,
    RecordView,
    attachments_for,
    get_record,
    list_conversations,
    list_devices,
    receipts_for,
)
from strongroom.archive.search import (
    MAX_QUERY_TERMS,
    MessageHit,
    SearchFilters,
    fold_ligatures,
    fts_query,
    search_messages,
)

__all__ = [
    "DASHBOARD_COUNTS",
    "MAX_QUERY_TERMS",
    "AttachmentRow",
    "AuditRow",
    "ConversationRow",
    "DeviceRow",
    "MessageHit",
    "ReceiptRow",
    "RecordView",
    "SearchFilters",
    "attachments_for",
    "audit_events",
    "counts",
    "fold_ligatures",
    "fts_query",
    "get_record",
    "last_audit_event",
    "list_conversations",
    "list_devices",
    "receipts_for",
    "search_messages",
]
