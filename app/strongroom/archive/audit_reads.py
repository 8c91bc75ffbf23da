"""The audit trail and the dashboard's headline counts, as the web UI and the CLI
read them (read only)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.archive.db import Connection


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: int
    actor: str
    action: str
    target: str
    details: str
    log_index: int


def audit_events(
    conn: Connection,
    *,
    action: str | None = None,
    actor: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 200,
) -> list[AuditRow]:
    where: list[str] = []
    args: list[object] = []
    for clause, value in (
        ("action = ?", action),
        ("actor = ?", actor),
        ("at >= ?", since_ms),
        ("at < ?", until_ms),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = "SELECT id, at, actor, action, target, details, log_index FROM audit_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(max(1, min(limit, 1000)))
    return [
        AuditRow(int(a), int(b), str(c), str(d), str(e), str(f), int(g))
        for a, b, c, d, e, f, g in conn.execute(sql, args)
    ]


def last_audit_event(conn: Connection, actions: Sequence[str]) -> AuditRow | None:
    """The most recent audit event whose action is one of `actions` (last backup, last check)."""
    marks = ",".join("?" * len(actions))  # only placeholders go into the SQL text
    columns = "id, at, actor, action, target, details, log_index"
    sql = f"SELECT {columns} FROM audit_events WHERE action IN ({marks}) ORDER BY id DESC LIMIT 1"  # noqa: S608
    row = conn.execute(sql, tuple(actions)).fetchone()
    if row is None:
        return None
    a, b, c, d, e, f, g = row
    return AuditRow(int(a), int(b), str(c), str(d), str(e), str(f), int(g))


# What the dashboard counts here: the rest costs it nothing (the record count alone
# reads a 5M-entry index, 0.7 s at 5M records); its messages come from a running
# count (message_count.py).
DASHBOARD_COUNTS = ("devices", "log_size")


def counts(conn: Connection, names: tuple[str, ...] | None = None) -> dict[str, int]:
    """Headline numbers for the dashboard (`names`: only those)."""
    out: dict[str, int] = {}
    for name, sql in (
        ("records", "SELECT count(*) FROM records"),
        ("messages", "SELECT count(*) FROM messages"),
        ("devices", "SELECT count(*) FROM devices WHERE revoked_at IS NULL"),
        # Leaves are numbered from 0 without a gap (verify says so when one is
        # missing): the last index says the size without counting 5M rows (0.7 s at 1M).
        ("log_size", "SELECT coalesce(max(idx) + 1, 0) FROM log_leaves"),
        ("blobs", "SELECT count(*) FROM blobs WHERE destroyed_at IS NULL"),
        ("pending_mail", "SELECT count(*) FROM mail WHERE acked_at IS NULL"),
    ):
        if names is not None and name not in names:
            continue
        out[name] = int(conn.execute(sql).fetchone()[0])
    return out
