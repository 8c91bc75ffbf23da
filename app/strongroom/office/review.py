"""The due queue and the decisions taken on it: approve, reject, extend.

Every decision names a user and a reason and is an audit event. Approving
destroys at once (a signed certificate), unless the box asks for two approvals
("four-eyes", the setting ``retention.two_approvals``): then a record is
destroyed when two different users have approved it, and the certificate names
both. Rejecting keeps a record for another year (it comes back to the queue
then); extending keeps it until a chosen date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive, Txn, WriteOpOf
from strongroom.office import retention
from strongroom.office.errors import InvalidPolicy
from strongroom.office.holds import list_holds
from strongroom.office.resolve import Resolver

TWO_APPROVALS = "retention.two_approvals"
REJECT_KEEPS_MS = 365 * 24 * 3600 * 1000


def two_approvals(conn: Connection) -> bool:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (TWO_APPROVALS,)).fetchone()
    return row is not None and str(row[0]) == "1"


def set_two_approvals(enabled: bool, actor: str) -> WriteOpOf[None]:
    def op(txn: Txn) -> None:
        txn.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (TWO_APPROVALS, "1" if enabled else "0"),
        )
        writes.audit(actor, "retention.four_eyes", "settings", {"enabled": enabled})(txn)

    return op


def approvals_of(conn: Connection) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for record, who in conn.execute(
        "SELECT record_id, approver FROM retention_approvals ORDER BY approved_at, approver"
    ):
        found.setdefault(int(record), []).append(str(who))
    return found


@dataclass(frozen=True)
class QueueItem:
    item: retention.DueItem
    state: str  # "review" | "destroy" | "held" | "kept"
    hold_ids: tuple[int, ...]
    approvals: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        i = self.item
        return {
            "id": i.record,
            "log_index": i.log_index,
            "kind": i.kind,
            "conversation": i.conversation_id,
            "matters": list(i.matters),
            "sent_at": i.sent_at,
            "due_at": i.due_at,
            "policy": i.policy.name,
            "assignment": i.assignment,
            "state": self.state,
            "holds": list(self.hold_ids),
            "approvals": list(self.approvals),
        }


@dataclass(frozen=True)
class Queue:
    items: list[QueueItem]
    two_approvals: bool
    hold_cases: dict[int, str]

    def groups(self) -> list[tuple[str, list[QueueItem]]]:
        """Items grouped by matter (or by conversation when it has none), due first."""
        grouped: dict[str, list[QueueItem]] = {}
        for q in self.items:
            key = (
                "matter " + ", ".join(q.item.matters)
                if q.item.matters
                else f"conversation {q.item.conversation_id}"
            )
            grouped.setdefault(key, []).append(q)
        return sorted(grouped.items())

    @property
    def actionable(self) -> list[QueueItem]:
        return [q for q in self.items if q.state in ("review", "destroy")]


def due_queue(conn: Connection, now_ms: int, resolver: Resolver | None = None) -> Queue:
    plan = retention.find_due(conn, now_ms, resolver=resolver)
    approvals = approvals_of(conn)
    items = [QueueItem(i, "review", (), tuple(approvals.get(i.record, []))) for i in plan.to_review]
    items += [
        QueueItem(i, "destroy", (), tuple(approvals.get(i.record, []))) for i in plan.to_destroy
    ]
    items += [QueueItem(h.item, "held", h.hold_ids, ()) for h in plan.held]
    items += [QueueItem(i, "kept", (), ()) for i in plan.kept]
    items.sort(key=lambda q: (q.item.due_at, q.item.record))
    cases = {h.id: h.spec.case_name or h.spec.reason for h in list_holds(conn, active_only=True)}
    return Queue(items, two_approvals(conn), cases)


@dataclass(frozen=True)
class Named:
    """The records a decision names, split by the due queue."""

    due: list[int]  # what the decision may act on, in the order named, once each
    not_due: list[int]  # the rest: left alone, and said


def named_due(conn: Connection, record_ids: Iterable[int], now_ms: int, *, approve: bool) -> Named:
    """The due-queue rule, one for the CLI and the web: a decision acts only on records
    `retention due` (Records office -> Due) lists now. Approving, only those waiting for
    review or destruction (not held, not kept by a reviewer); rejecting or extending,
    any the queue lists. A record no longer due, or a number naming no record (a stale
    or forged form, a typo), is left out."""
    queue = due_queue(conn, now_ms)
    listed = {q.item.record for q in (queue.actionable if approve else queue.items)}
    ids = list(dict.fromkeys(record_ids))
    return Named([r for r in ids if r in listed], [r for r in ids if r not in listed])


def _check(approver: str, reason: str) -> None:
    if not approver.strip():
        raise InvalidPolicy("a decision needs a named user")
    if not reason.strip():
        raise InvalidPolicy("a decision needs a reason")


@dataclass(frozen=True)
class Approval:
    approved: int  # records this user's approval counted for
    waiting: int  # approved but waiting for a second approver
    destruction: retention.Destruction | None


def approve(
    archive: Archive, record_ids: Iterable[int], approver: str, reason: str, now_ms: int
) -> Approval:
    """Approve the destruction of due records; destroy those with enough approvals."""
    _check(approver, reason)
    conn = archive.reader()
    try:
        wanted = named_due(conn, record_ids, now_ms, approve=True).due
        four_eyes = two_approvals(conn)
    finally:
        conn.close()

    def op(txn: Txn) -> dict[int, list[str]]:
        for record in wanted:
            txn.conn.execute(
                "INSERT OR IGNORE INTO retention_approvals (record_id, approver, approved_at,"
                " reason) VALUES (?, ?, ?, ?)",
                (record, approver, txn.at_ms, reason),
            )
        details = {"records": wanted, "reason": reason, "four_eyes": four_eyes}
        writes.audit(approver, "retention.approve", f"records:{len(wanted)}", details)(txn)
        return {r: v for r, v in approvals_of(txn.conn).items() if r in wanted}

    if not wanted:
        return Approval(0, 0, None)
    approvals = archive.write(op)
    need = 2 if four_eyes else 1
    ready = [r for r in wanted if len(set(approvals.get(r, []))) >= need]
    if not ready:
        return Approval(len(wanted), len(wanted), None)
    names = sorted({who for r in ready for who in approvals.get(r, [])})
    destruction = retention.approve_review(archive, ready, " + ".join(names), now_ms)
    return Approval(len(wanted), len(wanted) - len(ready), destruction)


def reject(record_ids: Iterable[int], user: str, reason: str, now_ms: int) -> WriteOpOf[int]:
    """Refuse a destruction: keep the records another year, then ask again."""
    _check(user, reason)
    keep_until = now_ms + REJECT_KEEPS_MS
    return retention.keep_after_review(record_ids, user, keep_until, reason, "retention.reject")


def extend(
    record_ids: Iterable[int], user: str, until_ms: int, reason: str, now_ms: int
) -> WriteOpOf[int]:
    """Keep records until a chosen later date."""
    _check(user, reason)
    if until_ms <= now_ms:
        raise InvalidPolicy("extend to a date in the future")
    return retention.keep_after_review(record_ids, user, until_ms, reason, "retention.extend")
