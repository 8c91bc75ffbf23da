"""Closing and reopening a matter (a conversation): the start event of
"matter closed" retention policies. Both are audit events."""

from __future__ import annotations

from strongroom.archive import writes
from strongroom.archive.store import Txn, WriteOp
from strongroom.office.errors import InvalidPolicy


def close_matter(conversation_id: int, actor: str, *, closed_at_ms: int | None = None) -> WriteOp:
    """Mark a conversation's matter closed (now, or at a given past date)."""

    def op(txn: Txn) -> None:
        at = txn.at_ms if closed_at_ms is None else closed_at_ms
        cur = txn.conn.execute(
            "UPDATE conversations SET closed_at = ? WHERE id = ?", (at, conversation_id)
        )
        if not cur.rowcount:
            raise InvalidPolicy(f"no conversation {conversation_id}")
        details = {"conversation": conversation_id, "closed_at": at}
        writes.audit(actor, "matter.close", f"conversation:{conversation_id}", details)(txn)

    return op


def reopen_matter(conversation_id: int, actor: str) -> WriteOp:
    def op(txn: Txn) -> None:
        cur = txn.conn.execute(
            "UPDATE conversations SET closed_at = NULL WHERE id = ?", (conversation_id,)
        )
        if not cur.rowcount:
            raise InvalidPolicy(f"no conversation {conversation_id}")
        details = {"conversation": conversation_id}
        writes.audit(actor, "matter.reopen", f"conversation:{conversation_id}", details)(txn)

    return op
