"""The retention engine: what is due, what is held, and the daily destruction run.

`find_due(conn, now_ms)` is a pure read: for every record still holding content
that can be due (each conversation's records up to the date bound its policies
give, `Resolver.due_bound`: the rest are never read, so a night costs the same at
5M records as at 100k) it resolves the governing policy, computes its due date,
and sorts it into
to_destroy / to_review / held (a hold always wins; a reviewer's "keep until"
postpones). `run(archive, now_ms, approver)` is the daily job: it destroys what
is due under a "destroy" policy and leaves review items listed;
`approve_review` destroys reviewed items on a named person's approval.

Every destruction re-plans inside its write transaction, so a hold placed
between planning and destroying still protects its records (re-reading the
senders of the conversations it destroys from `messages`, not only from
`conversation_senders`), and produces one signed destruction certificate,
logged in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strongroom.archive import conv_keys, writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive, Txn, WriteOpOf, latest_tree_head
from strongroom.office.certificates import (
    CertificateInfo,
    build_certificate,
    head_before,
    record_certificate,
)
from strongroom.office.erasure import ErasedBlob, delete_blob_files, erase_in_txn, scrub_storage
from strongroom.office.errors import ClockBehind, InvalidPolicy
from strongroom.office.facts import ConversationFacts, load_facts, senders_not_kept
from strongroom.office.holds import Hold, list_holds
from strongroom.office.policies import Policy
from strongroom.office.resolve import Resolver

# How far a destruction's decision time may trail the newest signed head.
CLOCK_SLACK_MS = 5 * 60 * 1000


@dataclass(frozen=True)
class DueItem:
    record: int  # records.id
    log_index: int
    kind: str
    conversation_id: int
    sent_at: int
    policy: Policy
    due_at: int
    assignment: str = ""  # where the policy came from: "matter:3", "default:*"…
    matters: tuple[str, ...] = ()  # the refs of the conversation's matters


@dataclass(frozen=True)
class HeldItem:
    item: DueItem
    hold_ids: tuple[int, ...]


@dataclass
class DuePlan:
    now_ms: int
    to_destroy: list[DueItem] = field(default_factory=list)
    to_review: list[DueItem] = field(default_factory=list)
    held: list[HeldItem] = field(default_factory=list)
    kept: list[DueItem] = field(default_factory=list)  # postponed by a reviewer

    @property
    def empty(self) -> bool:
        return not (self.to_destroy or self.to_review or self.held or self.kept)


def find_due(
    conn: Connection,
    now_ms: int,
    facts: dict[int, ConversationFacts] | None = None,
    resolver: Resolver | None = None,
) -> DuePlan:
    """Classify every record whose retention has run out at `now_ms` (`facts`:
    the conversations' persons and matters, when the caller built them;
    `resolver`: the policies and assignments, when the caller loaded them)."""
    resolver = Resolver.load(conn) if resolver is None else resolver
    plan = DuePlan(now_ms)
    if resolver.empty:
        return plan
    holds = list_holds(conn, active_only=True)
    live = live_from(conn, resolver.latest_due(now_ms))
    if facts is None:
        facts = load_facts(conn, only=None if live is None else live.keys())
    bounds = {}
    for f in facts.values():
        if live is not None and f.id not in live:
            continue  # no live record: nothing to probe
        bound = resolver.due_bound(f, now_ms)
        if bound is not None and (live is None or live[f.id] <= bound):
            # From its oldest live record (none before it: destroyed keys stay in
            # the index, years of them, and are not walked again each night).
            bounds[str(f.id)] = [MIN_SENT_AT if live is None else live[f.id], bound]
    if bounds:
        for conv, *row in conn.execute(_DUE_ROWS, conv_keys.per_arm([json.dumps(bounds)])):
            _classify(plan, resolver, holds, facts[int(conv)], row)
    # One order whatever the conversations' (the queue and the certificate list it).
    for items in (plan.to_destroy, plan.to_review, plan.kept):
        items.sort(key=lambda i: i.record)
    plan.held.sort(key=lambda h: h.item.record)
    return plan


def live_from(conn: Connection, latest: int) -> dict[int, int] | None:
    """The conversations whose oldest live record is dated `latest` or earlier, with
    that date (schema 11's conv_live, kept by triggers, read along its index on the
    date); None on an older archive. The plan builds the facts of these only, and
    probes the conversation index only where the date is within the conversation's
    bound: on a night with little due, a few conversations instead of every one."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'conv_live'").fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT conversation_id, live_from FROM conv_live WHERE live_from <= ?", (latest,)
    )
    return {int(c): int(at) for c, at in rows}


# Before any record date (ms): "from the conversation's first record".
MIN_SENT_AT = -(2**62)

# The live records of each conversation dated from its oldest live record (conv_live)
# up to its bound (Resolver.due_bound; a JSON object {conversation id: [from, bound]}):
# one range of the conversation index per conversation, in each of its two tables
# (conv_keys), less the destroyed ones within it:
# records_destroyed holds exactly those (a partial index), so each is skipped on an
# index probe, without its record row read (they pile up below the bounds over the
# years). No `r.destroyed_at IS NULL` here: SQLite would test it first, reading every
# row in the range. The order does not matter (the plan sorts its lists).
_DUE_ROWS = conv_keys.union(
    "SELECT k.conversation_id, k.record_id, r.log_index, r.kind, k.sent_at, kp.keep_until"
    " FROM json_each(?) j JOIN {keys} k"
    " ON k.conversation_id = CAST(j.key AS INTEGER)"
    " AND k.sent_at >= json_extract(j.value, '$[0]')"
    " AND k.sent_at <= json_extract(j.value, '$[1]')"
    " JOIN records r ON r.id = k.record_id"
    " LEFT JOIN retention_keeps kp ON kp.record_id = k.record_id"
    " WHERE NOT EXISTS (SELECT 1 FROM records d INDEXED BY records_destroyed"
    " WHERE d.conversation_id = k.conversation_id"
    " AND d.sent_at = k.sent_at AND d.id = k.record_id AND d.destroyed_at IS NOT NULL)"
)


def _classify(
    plan: DuePlan, resolver: Resolver, holds: list[Hold], f: ConversationFacts, row: list[Any]
) -> None:
    row_id, log_index, kind, sent_at, keep = row
    governing = resolver.governing(f, int(sent_at))
    if governing is None or governing.due_at is None or governing.due_at > plan.now_ms:
        return
    a = governing.assignment
    item = DueItem(
        int(row_id),
        int(log_index),
        str(kind),
        f.id,
        int(sent_at),
        governing.policy,
        governing.due_at,
        f"{a.scope}:{a.subject}",
        tuple(m.ref for m in f.matters),
    )
    covering = tuple(h.id for h in holds if h.covers(f, int(sent_at)))
    if covering:
        plan.held.append(HeldItem(item, covering))
    elif keep is not None and int(keep) > plan.now_ms:
        plan.kept.append(item)
    elif governing.policy.action == "destroy":
        plan.to_destroy.append(item)
    else:
        plan.to_review.append(item)


@dataclass(frozen=True)
class Destruction:
    """What a destruction did: the certificate (None when nothing was due) and leftovers."""

    certificate: CertificateInfo | None
    destroyed: int
    skipped: tuple[int, ...]  # asked for but no longer due, or held, at destruction time
    undeleted_blob_files: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    plan: DuePlan
    destruction: Destruction


def _destroy(
    archive: Archive,
    now_ms: int,
    approver: str,
    trigger: str,
    pick: Any,
    requested: Sequence[int] | None,
    resolver: Resolver | None = None,
) -> Destruction:
    if not approver.strip():
        raise InvalidPolicy("a destruction needs a named approver")
    box_key = bytes(archive.signing_key.verify_key)

    def op(txn: Txn) -> tuple[CertificateInfo | None, Any, tuple[int, ...]]:
        newest = latest_tree_head(txn.conn)
        # The decision time is read before the approvals and audit events that
        # lead here are written (and signed): allow that much, not a clock that
        # went back.
        if newest is not None and now_ms + CLOCK_SLACK_MS < newest.timestamp_ms:
            raise ClockBehind(
                f"the clock ({now_ms} ms) is earlier than the newest signed tree head"
                f" ({newest.timestamp_ms} ms): nothing is destroyed until it is set right"
            )
        # Re-plan inside the transaction: holds placed since the caller looked win.
        fresh = _replan_with_senders(
            txn.conn, now_ms, pick, find_due(txn.conn, now_ms, resolver=resolver), resolver
        )
        eligible: dict[int, DueItem] = {i.record: i for i in pick(fresh)}
        wanted = list(eligible) if requested is None else [r for r in requested if r in eligible]
        skipped = () if requested is None else tuple(r for r in requested if r not in eligible)
        if not wanted:
            return None, None, skipped
        head = head_before(txn)
        erasure = erase_in_txn(txn, wanted)
        certificate = build_certificate(
            erasure,
            {r: eligible[r].policy for r in wanted},
            assignment_of={r: eligible[r].assignment for r in wanted},
            holds_checked=[h.id for h in list_holds(txn.conn, active_only=True)],
            approver=approver,
            trigger=trigger,
            at_ms=txn.at_ms,
            tree_head=head,
            box_public_key=box_key,
        )
        info = record_certificate(
            txn, certificate, archive.signing_key, approver, len(erasure.records), trigger
        )
        return info, erasure, skipped

    info, erasure, skipped = archive.write(op)
    if info is None:
        return Destruction(None, 0, skipped, ())
    failed = delete_blob_files(archive.blobs, erasure.blobs)
    scrub_storage(archive)
    return Destruction(info, info.record_count, skipped, tuple(failed))


def _replan_with_senders(
    conn: Connection, now_ms: int, pick: Any, plan: DuePlan, resolver: Resolver | None = None
) -> DuePlan:
    """Destruction is irreversible: the persons a hold on a person (or a matter
    through its persons) is matched against come from `conversation_senders`,
    so re-read them from `messages` for the conversations about to be destroyed,
    and re-plan with any pair the table lacks: a held person's records stay."""
    missing = senders_not_kept(conn, (i.conversation_id for i in pick(plan)))
    if not missing:
        return plan
    return find_due(conn, now_ms, load_facts(conn, extra_senders=missing), resolver)


def _blob_files_left_behind(conn: Connection, archive: Archive) -> list[ErasedBlob]:
    rows = conn.execute(
        "SELECT sha256, log_index, file_name FROM blobs WHERE destroyed_at IS NOT NULL"
    ).fetchall()
    return [
        ErasedBlob(bytes(sha), int(index), str(name))
        for sha, index, name in rows
        if archive.blobs.path_for(str(name)).exists()
    ]


def run(
    archive: Archive,
    now_ms: int,
    approver: str = "retention-job",
    resolver: Resolver | None = None,
) -> RunResult:
    """The daily job: destroy everything due under a 'destroy' policy and not held
    (`resolver`: policies given in memory, as the night benchmark does)."""
    conn = archive.reader()
    try:
        plan = find_due(conn, now_ms, resolver=resolver)
        leftovers = _blob_files_left_behind(conn, archive)
    finally:
        conn.close()
    # A power cut between a destruction's commit and its file deletions leaves
    # unreadable (key-less) files: erasure still promises they go, so finish it.
    delete_blob_files(archive.blobs, leftovers)
    if not plan.to_destroy:
        return RunResult(plan, Destruction(None, 0, (), ()))
    destruction = _destroy(
        archive, now_ms, approver, "retention-run", lambda p: p.to_destroy, None, resolver
    )
    return RunResult(plan, destruction)


def approve_review(
    archive: Archive, record_ids: Iterable[int], approver: str, now_ms: int
) -> Destruction:
    """Destroy approved due records (records.id). Held or no-longer-due ones are skipped."""
    requested = list(dict.fromkeys(record_ids))
    return _destroy(
        archive,
        now_ms,
        approver,
        "review-approval",
        lambda p: [*p.to_review, *p.to_destroy],
        requested,
    )


def keep_after_review(
    record_ids: Iterable[int],
    reviewer: str,
    keep_until_ms: int,
    reason: str,
    action: str = "retention.keep",
) -> WriteOpOf[int]:
    """A reviewer keeps records past their due date, until `keep_until_ms` (audited)."""
    ids = list(dict.fromkeys(record_ids))
    if not reason.strip() or not reviewer.strip():
        raise InvalidPolicy("keeping a record after review needs a reviewer and a reason")

    def op(txn: Txn) -> int:
        # A number that names no record (a forged form, a typo) is no decision: left out
        # rather than failing the whole write on the foreign key.
        known = [
            r
            for r in ids
            if txn.conn.execute("SELECT 1 FROM records WHERE id = ?", (r,)).fetchone()
        ]
        for record in known:
            txn.conn.execute(
                "INSERT INTO retention_keeps (record_id, keep_until, decided_by, decided_at,"
                " reason) VALUES (?, ?, ?, ?, ?) ON CONFLICT (record_id) DO UPDATE SET"
                " keep_until = excluded.keep_until, decided_by = excluded.decided_by,"
                " decided_at = excluded.decided_at, reason = excluded.reason",
                (record, keep_until_ms, reviewer, txn.at_ms, reason),
            )
        if not known:
            return 0
        details = {"records": known, "keep_until": keep_until_ms, "reason": reason}
        writes.audit(reviewer, action, f"records:{len(known)}", details)(txn)
        return len(known)

    return op
