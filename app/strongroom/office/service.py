"""The records office's operations by name, with JSON in and JSON out.

One table serves the CLI both ways: with the box running, the CLI sends
``{"op": NAME, "params": {...}}`` to the control socket (`office_control_routes`),
which runs the operation in the box; with the box stopped, the CLI opens the
archive and calls `run_op` itself. Either way the same code decides, writes the
same audit events, and returns the same JSON.
"""

from __future__ import annotations

import base64
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveError
from strongroom.archive.store import Archive
from strongroom.office import (
    certificates,
    holds,
    matters,
    person_scope,
    pickers,
    policies,
    retention,
    review,
)
from strongroom.office.errors import InvalidHold, InvalidPolicy, UnknownPolicy
from strongroom.office.practice_days import hold_bound, zone_of


@dataclass(frozen=True)
class Ctx:
    archive: Archive
    now_ms: int

    def read(self, query: Callable[[Connection], Any]) -> Any:
        conn = self.archive.reader()
        try:
            return query(conn)
        finally:
            conn.close()


def _text(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    return value.strip() if isinstance(value, str) else ""


def find_conversation(conn: Connection, ref: str) -> int:
    """A conversation by number, by "owner/ref", or by its phone ref when unique."""
    ref = ref.strip()
    number = pickers.number(ref) if not ref.startswith("#") else None
    if number is not None:
        row = conn.execute("SELECT id FROM conversations WHERE id = ?", (number,)).fetchone()
        if row is not None:
            return int(row[0])
    owner, _, conv = ref.rpartition("/")
    # OWNER/REF by the (owner, ref) index; a phone's ref alone by the same index once
    # per owner (the practice's staff, not its conversations: never a full read).
    owners = [owner] if owner else person_scope.distinct_names(conn, "owner")
    rows = [
        row
        for name in owners
        for row in conn.execute(
            "SELECT id FROM conversations WHERE owner = ? AND ref = ?", (name, conv)
        )
    ]
    if len(rows) == 1:
        return int(rows[0][0])
    if rows:
        raise InvalidPolicy(f"conversation {ref!r} is ambiguous: write OWNER/REF or its number")
    raise InvalidPolicy(f"no conversation {ref!r}")


def find_policy(conn: Connection, name: str) -> policies.Policy:
    """A policy by number, preset key or exact name."""
    name = name.strip()
    number = pickers.number(name)
    if number is not None:
        return policies.get_policy(conn, number)
    for p in policies.list_policies(conn):
        if p.preset == name or p.name == name:
            return p
    raise UnknownPolicy(f"no retention policy {name!r}")


def _subject(conn: Connection, params: dict[str, Any]) -> tuple[str, str]:
    """(scope, subject) from exactly one of person / conversation / matter."""
    given = [k for k in ("person", "conversation", "matter") if _text(params, k)]
    if len(given) != 1:
        raise InvalidPolicy("name exactly one of a person, a conversation or a matter")
    key = given[0]
    if key == "person":
        return "person", _text(params, "person")
    if key == "conversation":
        return "conversation", str(find_conversation(conn, _text(params, "conversation")))
    return "matter", str(matters.find_matter(conn, _text(params, "matter")).id)


def _hold_json(h: holds.Hold, reach: holds.HoldReach | None, zone: str) -> dict[str, Any]:
    s = h.spec
    days = None
    if s.from_ms is not None and s.to_ms is not None:
        # A date-range hold's days in the practice's zone, first and last included; the
        # exact date-times of a bound that is not a whole practice day (an older hold).
        days = [hold_bound(s.from_ms, zone), hold_bound(s.to_ms, zone, until=True), zone]
    return {
        "days": days,
        "id": h.id,
        "scope": s.scope,
        "subject": s.subject(),
        "case": s.case_name,
        "reason": s.reason,
        "placed_by": h.placed_by,
        "placed_at": h.placed_at,
        "active": h.active,
        "lifted_by": h.lifted_by,
        "lifted_at": h.lifted_at,
        "lift_reason": h.lift_reason,
        "conversations": None if reach is None else reach.conversations,
        "records": None if reach is None else reach.records,
    }


def hold_list(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    def q(conn: Connection) -> tuple[list[dict[str, Any]], str]:
        found = holds.list_holds(conn)
        reach = holds.hold_reach(conn, found)
        zone = zone_of(conn)
        return [_hold_json(h, reach.get(h.id) if h.active else None, zone) for h in found], zone

    found, zone = ctx.read(q)
    return {"holds": found, "time_zone": zone}


def hold_add(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    from strongroom.office.matter_ops import day_ms

    if _text(params, "from") or _text(params, "to"):
        # A date-range hold: the practice's days, both included (as the web form).
        scope, subject = "date_range", ""
        from_ms, to_ms = day_ms(ctx, params, "from"), day_ms(ctx, params, "to", next_day=True)
        to_ms = None if to_ms is None else to_ms - 1  # both ends are held (holds.py)
    else:
        scope, subject = ctx.read(lambda conn: _subject(conn, params))
        from_ms = to_ms = None
    spec = holds.HoldSpec(
        scope=scope,
        reason=_text(params, "reason"),
        conversation_id=int(subject) if scope == "conversation" else None,
        person=subject if scope == "person" else None,
        matter_id=int(subject) if scope == "matter" else None,
        from_ms=from_ms,
        to_ms=to_ms,
        case_name=_text(params, "case"),
    )
    hold_id = ctx.archive.write(holds.place_hold(spec, _text(params, "actor")))
    listed = hold_list(ctx, {})["holds"]
    return {"hold": next(h for h in listed if h["id"] == hold_id)}


def hold_lift(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    hold_id = int(params.get("id") or 0)
    ctx.archive.write(holds.lift_hold(hold_id, _text(params, "actor"), _text(params, "reason")))
    return {"lifted": hold_id}


def _policy_json(p: policies.Policy) -> dict[str, Any]:
    return {"id": p.id, "preset": p.preset, "retired": p.retired_at is not None, **p.describe()}


def retention_policies(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    def q(conn: Connection) -> dict[str, Any]:
        by_id = {p.id: p for p in policies.list_policies(conn)}
        return {
            "policies": [_policy_json(p) for p in by_id.values()],
            "assignments": [
                {
                    "scope": a.scope,
                    "subject": a.subject,
                    "policy": by_id[a.policy_id].name if a.policy_id in by_id else a.policy_id,
                    "assigned_by": a.assigned_by,
                    "assigned_at": a.assigned_at,
                }
                for a in policies.list_assignments(conn)
            ],
        }

    return dict(ctx.read(q))


def _assignment_subject(conn: Connection, params: dict[str, Any]) -> tuple[str, str]:
    """(scope, subject) as stored in retention_assignments: a person is a "contact"."""
    if params.get("default"):
        return "default", policies.DEFAULT_SUBJECT
    scope, subject = _subject(conn, params)
    return ("contact" if scope == "person" else scope), subject


def retention_assign(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    def q(conn: Connection) -> tuple[str, str, policies.Policy]:
        scope, subject = _assignment_subject(conn, params)
        return scope, subject, find_policy(conn, _text(params, "policy"))

    scope, subject, policy = ctx.read(q)
    ctx.archive.write(policies.assign_policy(scope, subject, policy.id, _text(params, "actor")))
    return {"assigned": {"scope": scope, "subject": subject, "policy": policy.name}}


def retention_unassign(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    scope, subject = ctx.read(lambda conn: _assignment_subject(conn, params))
    op = policies.unassign_policy(scope, subject, _text(params, "actor"))
    if not ctx.archive.write(op):
        what = "no default policy" if scope == "default" else f"no policy for {scope} {subject}"
        raise InvalidPolicy(f"{what} is assigned")
    return {"unassigned": {"scope": scope, "subject": subject}}


def retention_due(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    queue: review.Queue
    queue, zone = ctx.read(lambda conn: (review.due_queue(conn, ctx.now_ms), zone_of(conn)))
    return {
        "time_zone": zone,
        "two_approvals": queue.two_approvals,
        "items": [q.as_json() for q in queue.items],
        "holds": {str(k): v for k, v in queue.hold_cases.items()},
    }


def _destruction_json(d: retention.Destruction | None) -> dict[str, Any] | None:
    if d is None:
        return None
    cert = d.certificate
    return {
        "destroyed": d.destroyed,
        "skipped": list(d.skipped),
        "certificate": None if cert is None else cert.id,
        "certificate_sha256": None if cert is None else cert.sha256.hex(),
    }


NOT_DUE = "none of the records named is due (see `strongroom retention due`)"


def retention_approve(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("all_due"):
        due = ctx.read(lambda conn: review.due_queue(conn, ctx.now_ms))
        ids = [q.item.record for q in due.actionable]
    else:
        ids = [int(i) for i in params.get("ids") or []]
        if not ids:
            raise InvalidPolicy("name the records to approve, or --all-due")
    result = review.approve(
        ctx.archive, ids, _text(params, "actor"), _text(params, "reason"), ctx.now_ms
    )
    if ids and not params.get("all_due") and result.approved == 0:  # nothing was written
        raise InvalidPolicy(NOT_DUE)
    return {
        "approved": result.approved,
        "waiting_second_approval": result.waiting,
        "destruction": _destruction_json(result.destruction),
    }


def _keep(ctx: Ctx, params: dict[str, Any], extend: bool) -> dict[str, Any]:
    named = [int(i) for i in params.get("ids") or []]
    ids = ctx.read(lambda conn: review.named_due(conn, named, ctx.now_ms, approve=False).due)
    if not ids:
        raise InvalidPolicy(NOT_DUE)
    actor, reason = _text(params, "actor"), _text(params, "reason")
    if extend:
        from strongroom.office.matter_ops import day_ms

        until = day_ms(ctx, params, "until")
        if until is None:
            raise InvalidPolicy("say until when (YYYY-MM-DD)")
        op = review.extend(ids, actor, until, reason, ctx.now_ms)
    else:
        op = review.reject(ids, actor, reason, ctx.now_ms)
    return {"kept": ctx.archive.write(op)}


def retention_run(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    result = retention.run(ctx.archive, ctx.now_ms)
    plan = result.plan
    return {
        "destroyed": result.destruction.destroyed,
        "to_review": len(plan.to_review),
        "held": len(plan.held),
        "kept": len(plan.kept),
        "destruction": _destruction_json(result.destruction),
    }


def retention_summary(result: dict[str, Any]) -> str:
    """What a daily run did, for a person: the CLI, the night job's STATUS= and dashboard."""
    lines = [
        f"Retention run: {result['destroyed']} records destroyed, {result['to_review']} waiting"
        f" for review, {result['held']} protected by a legal hold, {result['kept']} kept by a"
        " reviewer."
    ]
    destruction = result.get("destruction")
    if destruction and destruction["certificate"] is not None:
        lines.append(
            f"Destroyed {destruction['destroyed']} records; destruction certificate"
            f" {destruction['certificate']} (SHA-256 {destruction['certificate_sha256']})."
        )
        lines.append(
            f"Download it: strongroom certificates get {destruction['certificate']} --out FILE.zip"
        )
    return "\n".join(lines)


def certificates_list(ctx: Ctx, _params: dict[str, Any]) -> dict[str, Any]:
    found, zone = ctx.read(lambda conn: (certificates.list_certificates(conn), zone_of(conn)))
    return {
        "time_zone": zone,
        "certificates": [
            {
                "id": c.id,
                "created_at": c.created_at,
                "approver": c.approver,
                "records": c.record_count,
                "log_index": c.log_index,
                "sha256": c.sha256.hex(),
            }
            for c in found
        ],
    }


def certificate_zip(archive: Archive, cert_id: int) -> bytes:
    with tempfile.TemporaryDirectory(prefix="strongroom-cert-") as tmp:
        out = Path(tmp) / "certificate.zip"
        conn = archive.reader()
        try:
            certificates.write_certificate_bundle(conn, archive.signing_key, cert_id, out)
        finally:
            conn.close()
        return out.read_bytes()


def certificates_get(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    data = certificate_zip(ctx.archive, int(params.get("id") or 0))
    return {"zip": base64.b64encode(data).decode("ascii")}


def hold_find(ctx: Ctx, params: dict[str, Any]) -> dict[str, Any]:
    """What `hold add` can name, by its first letters (office/pickers.py, as the web form)."""
    from strongroom.office import pickers

    kind = _text(params, "kind") or "conversation"
    found = ctx.read(lambda conn: pickers.find(conn, kind, _text(params, "text")))
    return {"kind": kind, "found": [{"value": f.value, "label": f.label} for f in found]}


OPS: dict[str, Callable[[Ctx, dict[str, Any]], dict[str, Any]]] = {
    "hold.list": hold_list,
    "hold.find": hold_find,
    "hold.add": hold_add,
    "hold.lift": hold_lift,
    "retention.policies": retention_policies,
    "retention.assign": retention_assign,
    "retention.unassign": retention_unassign,
    "retention.due": retention_due,
    "retention.approve": retention_approve,
    "retention.reject": lambda ctx, params: _keep(ctx, params, False),
    "retention.extend": lambda ctx, params: _keep(ctx, params, True),
    "retention.run": retention_run,
    "certificates.list": certificates_list,
    "certificates.get": certificates_get,
}


class OpRefused(Exception):
    """An operation refused with a reason a person can read (nothing was written)."""


def run_op(archive: Archive, name: str, params: dict[str, Any], now_ms: int | None = None) -> Any:
    """Run one named operation; refusals become OpRefused with the reason."""
    from strongroom.office.audit_ops import AUDIT_OPS
    from strongroom.office.matter_ops import MATTER_OPS

    op = OPS.get(name) or MATTER_OPS.get(name) or AUDIT_OPS.get(name)
    if op is None:
        raise OpRefused(f"unknown operation {name!r}")
    ctx = Ctx(archive, int(time.time() * 1000) if now_ms is None else now_ms)
    try:
        return op(ctx, params)
    except (InvalidHold, InvalidPolicy, UnknownPolicy, ArchiveError, ValueError) as exc:
        raise OpRefused(str(exc)) from exc
