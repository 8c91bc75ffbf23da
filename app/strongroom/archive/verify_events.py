"""Verify's checks of the log entries that are not records: audit events, device
events (pairings, revocations) and attachment blobs, over the whole log or (an
incremental verify) the entries whose leaf is in a range."""

from __future__ import annotations

import hashlib
from typing import Any

from strongroom.archive.blobs import BlobLocation, BlobStore
from strongroom.archive.db import Connection
from strongroom.archive.errors import BlobError
from strongroom.archive.record import leaf_data
from strongroom.archive.verify_records import Progress, VerifyReport, check_leaf, guarded
from strongroom.archive.writes import audit_content, device_event_content


def _verify_audit_event(row: tuple[Any, ...], what: str, report: VerifyReport) -> None:
    at, actor, action, target, details, index, stored_leaf = row
    content = audit_content(at, actor, action, target, details)
    expected = leaf_data("audit", hashlib.sha256(content).digest(), at)
    check_leaf(report, index, stored_leaf, expected, what)


# Every log index: the range a full verify checks.
WHOLE_LOG = (0, 2**62)


def verify_audit_events(
    conn: Connection, report: VerifyReport, log_range: tuple[int, int] = WHOLE_LOG
) -> None:
    for row in conn.execute(
        "SELECT a.at, a.actor, a.action, a.target, a.details, a.log_index, l.leaf_data"
        " FROM audit_events a LEFT JOIN log_leaves l ON l.idx = a.log_index"
        " WHERE a.log_index >= ? AND a.log_index < ?",
        log_range,
    ):
        what = f"audit event at log {row[5]}"
        with guarded(report, what):
            _verify_audit_event(row, what, report)
        report.audit_events += 1


def verify_device_events(conn: Connection, report: VerifyReport) -> None:
    """Every pairing and revocation the devices table shows is in the log, and back
    (a few rows per phone: always checked whole).

    The device leaves are found on their own partial index (schema 9,
    `log_leaves_device`), not by reading the whole log (1.5 s at 5M leaves before)."""
    logged = [
        (int(index), bytes(data))
        for index, data in conn.execute(
            "SELECT idx, leaf_data FROM log_leaves WHERE kind = 'device'"
        )
    ]
    logged_device = {data for _, data in logged}
    expected_device: set[bytes] = set()
    for (
        device_id,
        sign_key,
        noise_key,
        owner,
        name,
        method,
        paired_at,
        revoked_at,
        reason,
    ) in conn.execute(
        "SELECT id, sign_key, noise_key, owner, name, pairing_method, paired_at, revoked_at,"
        " revoked_reason FROM devices"
    ):
        paired = device_event_content(
            {
                "event": "paired",
                "sign_key": bytes(sign_key),
                "noise_key": bytes(noise_key),
                "owner": owner,
                "name": name,
                "method": method,
                "at": paired_at,
            }
        )
        paired_leaf = leaf_data("device", hashlib.sha256(paired).digest(), paired_at)
        expected_device.add(paired_leaf)
        if paired_leaf not in logged_device:
            report.problem(f"device {device_id} ({name}): its pairing is not in the log")
        if revoked_at is not None:
            revoked = device_event_content(
                {
                    "event": "revoked",
                    "sign_key": bytes(sign_key),
                    "reason": reason,
                    "at": revoked_at,
                }
            )
            revoked_leaf = leaf_data("device", hashlib.sha256(revoked).digest(), revoked_at)
            expected_device.add(revoked_leaf)
            if revoked_leaf not in logged_device:
                report.problem(f"device {device_id} ({name}): its revocation is not in the log")
    for index, data in logged:
        report.device_events += 1
        if data not in expected_device:
            report.problem(f"device event at log {index}: no device matches it")


def verify_blobs(
    conn: Connection,
    blobs: BlobStore,
    progress: Progress,
    report: VerifyReport,
    log_range: tuple[int, int] = WHOLE_LOG,
) -> None:
    rows = conn.execute(
        "SELECT b.sha256, b.size, b.file_name, b.key_salt, b.created_at, b.log_index,"
        " b.destroyed_at, l.leaf_data FROM blobs b LEFT JOIN log_leaves l ON l.idx = b.log_index"
        " WHERE b.log_index >= ? AND b.log_index < ?",
        log_range,
    ).fetchall()
    for sha, size, file_name, salt, created_at, index, destroyed, stored_leaf in rows:
        sha = bytes(sha)
        what = f"blob {sha.hex()[:16]}"
        check_leaf(report, index, stored_leaf, leaf_data("blob", sha, created_at), what)
        report.blobs += 1
        if destroyed is not None:
            continue
        try:
            blobs.verify(BlobLocation(file_name, bytes(salt)), int(size), sha)
        except BlobError as exc:
            report.problem(f"{what}: {exc}")
        progress("blobs", report.blobs, len(rows))


# Every table whose rows name a log leaf: the entries (records, audit events,
# blobs) and the destruction certificates (the audit event that logged each).
LOGGED_TABLES = ("records", "audit_events", "blobs", "destruction_certificates")


def verify_log_refs(conn: Connection, size: int, report: VerifyReport) -> None:
    """No row names a leaf outside the log [0, size): a row at or beyond the signed
    head, or below 0, is outside every range a verify reads by index, so the
    incremental verify would never look at it (one indexed count per table)."""
    tables = {
        str(name) for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    for table in LOGGED_TABLES:
        if table not in tables:
            continue  # destruction_certificates: absent before its migration
        # Two range counts, each a search of the log_index unique index (an OR, or
        # IS NULL, would scan it whole; the column is NOT NULL).
        beyond, below = conn.execute(
            f"SELECT (SELECT count(*) FROM {table} WHERE log_index >= ?),"  # noqa: S608
            f" (SELECT count(*) FROM {table} WHERE log_index < 0)",
            (size,),
        ).fetchone()
        if int(beyond) or int(below):
            report.problem(
                f"log: {int(beyond) + int(below)} {table} row(s) name a log leaf outside"
                f" [0, {size}), the log the signed tree head covers"
            )


def count_entries(conn: Connection) -> int:
    """The log entries the archive holds other than device events (index counts)."""
    total = 0
    for table in ("records", "audit_events", "blobs"):
        total += int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    return total


# Conversations named one by one in a report; the rest are counted.
_NAMED = 20


def verify_conversation_senders(conn: Connection, report: VerifyReport) -> None:
    """`conversation_senders` (schema 6, kept by a trigger) holds exactly the
    (conversation, sender) pairs of `messages`: holds on a person, matters found
    through a person and person exports read it, so a missing pair would let
    retention destroy a held person's records. Both directions, one scan each."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conversation_senders'"
    ).fetchone()
    if has_table is None:
        return  # an archive opened at an older schema version
    checks = (
        (
            "SELECT conversation_id, sender FROM messages"
            " EXCEPT SELECT conversation_id, sender FROM conversation_senders",
            "sender(s) of its messages missing from conversation_senders: holds, matters"
            " and exports on that person miss the conversation",
        ),
        (
            "SELECT conversation_id, sender FROM conversation_senders"
            " EXCEPT SELECT conversation_id, sender FROM messages",
            "sender(s) in conversation_senders with no message of theirs in it",
        ),
    )
    for query, what in checks:
        counts = conn.execute(
            f"SELECT conversation_id, count(*) FROM ({query})"  # noqa: S608
            " GROUP BY conversation_id ORDER BY conversation_id"
        ).fetchall()
        for cid, n in counts[:_NAMED]:
            report.problem(f"conversation {cid}: {n} {what}")
        if len(counts) > _NAMED:
            report.problem(f"{len(counts) - _NAMED} more conversations: {what}")


__all__ = [
    "LOGGED_TABLES",
    "WHOLE_LOG",
    "count_entries",
    "verify_audit_events",
    "verify_blobs",
    "verify_conversation_senders",
    "verify_device_events",
    "verify_log_refs",
]
