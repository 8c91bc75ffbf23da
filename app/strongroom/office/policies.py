"""Retention policies and their assignment to conversations, contacts and device owners.

A policy says how long records are kept (a calendar duration), from which event
the clock starts, and what happens at the end (destroy, or list for review).
Start events:

* ``record_date``: each record's own date (``records.sent_at``);
* ``last_activity``: the conversation's last record (``conversations.last_at``),
  the French medical rule counts from the last consultation, not each note;
* ``matter_closed``: the day the matter was closed (``conversations.closed_at``);
  an open matter is never due.

Assignments (to a conversation, a matter, a contact, a device owner, or the
default) and which one wins: see `resolve` and docs/records-office.md. A
retired policy keeps governing what it was assigned to but cannot be assigned
again. Every change is an audit event (a log leaf): who changed which rule, when.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOpOf
from strongroom.office.errors import InvalidPolicy, UnknownPolicy

UNITS = ("days", "months", "years")
START_EVENTS = ("record_date", "last_activity", "matter_closed")
ACTIONS = ("destroy", "review")
SCOPES = ("conversation", "matter", "contact", "owner", "default")
DEFAULT_SUBJECT = "*"
MAX_NAME_CHARS = 120


@dataclass(frozen=True)
class Duration:
    value: int
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise InvalidPolicy(f"duration unit must be one of {', '.join(UNITS)}")
        if not isinstance(self.value, int) or isinstance(self.value, bool) or self.value <= 0:
            raise InvalidPolicy("duration must be a positive whole number")
        if self.value > 200 * (365 if self.unit == "days" else 12 if self.unit == "months" else 1):
            raise InvalidPolicy("duration longer than 200 years")

    def after(self, start_ms: int) -> int:
        """start + duration on the UTC calendar (31 Jan + 1 month = 28/29 Feb)."""
        start = datetime.fromtimestamp(start_ms / 1000, UTC)
        if self.unit == "days":
            return int((start + timedelta(days=self.value)).timestamp() * 1000)
        months = self.value * (12 if self.unit == "years" else 1)
        total = start.month - 1 + months
        year, month = start.year + total // 12, total % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return int(start.replace(year=year, month=month, day=day).timestamp() * 1000)

    def label(self) -> str:
        return f"{self.value} {self.unit}"


@dataclass(frozen=True)
class Policy:
    id: int
    name: str
    duration: Duration
    start_event: str
    action: str
    legal_basis: str
    preset: str | None
    retired_at: int | None = None

    def due_at(self, record_ms: int, last_activity_ms: int, closed_ms: int | None) -> int | None:
        """When a record under this policy falls due, or None (matter still open)."""
        if self.start_event == "record_date":
            return self.duration.after(record_ms)
        if self.start_event == "last_activity":
            return self.duration.after(last_activity_ms)
        return None if closed_ms is None else self.duration.after(closed_ms)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration": self.duration.label(),
            "start_event": self.start_event,
            "action": self.action,
            "legal_basis": self.legal_basis,
        }


@dataclass(frozen=True)
class PolicySpec:
    """What an admin edits: everything but the id."""

    name: str
    duration: Duration
    start_event: str
    action: str
    legal_basis: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > MAX_NAME_CHARS:
            raise InvalidPolicy(f"a policy needs a name of 1 to {MAX_NAME_CHARS} characters")
        if self.start_event not in START_EVENTS:
            raise InvalidPolicy(f"start event must be one of {', '.join(START_EVENTS)}")
        if self.action not in ACTIONS:
            raise InvalidPolicy(f"action must be one of {', '.join(ACTIONS)}")


# The French defaults shipped as editable rows (see migrations.OFFICE_MIGRATION).
PRESETS: dict[str, PolicySpec] = {
    # Code de la santé publique, art. R.1112-7: 20 years from the last stay or
    # consultation; elimination is a decision after the physician's opinion: review.
    "dossier-medical": PolicySpec(
        "Dossier médical",
        Duration(20, "years"),
        "last_activity",
        "review",
        "Code de la santé publique, art. R.1112-7 : 20 ans à compter de la dernière consultation",
    ),
    # Code civil, art. 2225: a lawyer's liability is time-barred 5 years after the
    # end of the mission, so the file is kept that long after closing; reviewed
    # because a related matter may still be open.
    "dossier-avocat": PolicySpec(
        "Dossier d'avocat",
        Duration(5, "years"),
        "matter_closed",
        "review",
        "Code civil, art. 2225 : responsabilité de l'avocat prescrite 5 ans après la fin de"
        " la mission",
    ),
    # Code civil, art. 2224: the ordinary limitation period for personal actions
    # is 5 years; past it, general correspondence has no further legal use.
    "correspondance-generale": PolicySpec(
        "Correspondance générale",
        Duration(5, "years"),
        "record_date",
        "destroy",
        "Code civil, art. 2224 : prescription de droit commun de 5 ans",
    ),
    # Code de commerce, art. L.123-22: accounting documents and their supporting
    # pieces are kept 10 years (accountants' clients).
    "pieces-comptables": PolicySpec(
        "Pièces comptables",
        Duration(10, "years"),
        "record_date",
        "destroy",
        "Code de commerce, art. L.123-22 : pièces justificatives conservées 10 ans",
    ),
}

_POLICY_COLUMNS = (
    "id, name, duration_value, duration_unit, start_event, action, legal_basis, preset, retired_at"
)


def _policy(row: Any) -> Policy:
    return Policy(
        id=int(row[0]),
        name=str(row[1]),
        duration=Duration(int(row[2]), str(row[3])),
        start_event=str(row[4]),
        action=str(row[5]),
        legal_basis=str(row[6]),
        preset=None if row[7] is None else str(row[7]),
        retired_at=None if row[8] is None else int(row[8]),
    )


def list_policies(conn: Connection) -> list[Policy]:
    rows = conn.execute(f"SELECT {_POLICY_COLUMNS} FROM retention_policies ORDER BY name")  # noqa: S608
    return [_policy(row) for row in rows]


def get_policy(conn: Connection, policy_id: int) -> Policy:
    row = conn.execute(
        f"SELECT {_POLICY_COLUMNS} FROM retention_policies WHERE id = ?",  # noqa: S608
        (policy_id,),
    ).fetchone()
    if row is None:
        raise UnknownPolicy(f"no retention policy {policy_id}")
    return _policy(row)


def policy_by_preset(conn: Connection, preset: str) -> Policy:
    row = conn.execute(
        f"SELECT {_POLICY_COLUMNS} FROM retention_policies WHERE preset = ?",  # noqa: S608
        (preset,),
    ).fetchone()
    if row is None:
        raise UnknownPolicy(f"no preset {preset!r}")
    return _policy(row)


def _spec_details(spec: PolicySpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "duration": spec.duration.label(),
        "start_event": spec.start_event,
        "action": spec.action,
        "legal_basis": spec.legal_basis,
    }


def create_policy(spec: PolicySpec, actor: str) -> WriteOpOf[int]:
    def op(txn: Txn) -> int:
        exists = txn.conn.execute(
            "SELECT 1 FROM retention_policies WHERE name = ?", (spec.name,)
        ).fetchone()
        if exists is not None:
            raise InvalidPolicy(f"a policy named {spec.name!r} already exists")
        cur = txn.conn.execute(
            "INSERT INTO retention_policies (name, duration_value, duration_unit, start_event,"
            " action, legal_basis, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                spec.name,
                spec.duration.value,
                spec.duration.unit,
                spec.start_event,
                spec.action,
                spec.legal_basis,
                txn.at_ms,
                txn.at_ms,
            ),
        )
        policy_id = int(cur.lastrowid or 0)
        writes.audit(actor, "retention.policy.create", f"policy:{policy_id}", _spec_details(spec))(
            txn
        )
        return policy_id

    return op


def update_policy(policy_id: int, spec: PolicySpec, actor: str) -> WriteOpOf[None]:
    """Edit a policy (presets included); the new rule applies from the next run."""

    def op(txn: Txn) -> None:
        before = get_policy(txn.conn, policy_id)
        clash = txn.conn.execute(
            "SELECT 1 FROM retention_policies WHERE name = ? AND id != ?", (spec.name, policy_id)
        ).fetchone()
        if clash is not None:
            raise InvalidPolicy(f"a policy named {spec.name!r} already exists")
        txn.conn.execute(
            "UPDATE retention_policies SET name = ?, duration_value = ?, duration_unit = ?,"
            " start_event = ?, action = ?, legal_basis = ?, updated_at = ? WHERE id = ?",
            (
                spec.name,
                spec.duration.value,
                spec.duration.unit,
                spec.start_event,
                spec.action,
                spec.legal_basis,
                txn.at_ms,
                policy_id,
            ),
        )
        details = {"before": before.describe(), "after": _spec_details(spec)}
        writes.audit(actor, "retention.policy.update", f"policy:{policy_id}", details)(txn)

    return op


def delete_policy(policy_id: int, actor: str) -> WriteOpOf[None]:
    """Remove a policy that no assignment uses."""

    def op(txn: Txn) -> None:
        before = get_policy(txn.conn, policy_id)
        used = txn.conn.execute(
            "SELECT count(*) FROM retention_assignments WHERE policy_id = ?", (policy_id,)
        ).fetchone()
        if int(used[0]):
            raise InvalidPolicy(f"policy {before.name!r} is assigned; unassign it first")
        txn.conn.execute("DELETE FROM retention_policies WHERE id = ?", (policy_id,))
        writes.audit(actor, "retention.policy.delete", f"policy:{policy_id}", before.describe())(
            txn
        )

    return op


def retire_policy(policy_id: int, actor: str) -> WriteOpOf[None]:
    """Retire a policy: what it governs stays governed, nothing new can be assigned to it."""

    def op(txn: Txn) -> None:
        before = get_policy(txn.conn, policy_id)
        if before.retired_at is not None:
            raise InvalidPolicy(f"policy {before.name!r} is already retired")
        txn.conn.execute(
            "UPDATE retention_policies SET retired_at = ?, updated_at = ? WHERE id = ?",
            (txn.at_ms, txn.at_ms, policy_id),
        )
        writes.audit(actor, "retention.policy.retire", f"policy:{policy_id}", before.describe())(
            txn
        )

    return op


_ID = re.compile(r"[0-9]{1,18}")


def _check_scope(scope: str, subject: str) -> None:
    if scope not in SCOPES:
        raise InvalidPolicy(f"scope must be one of {', '.join(SCOPES)}")
    if not subject.strip():
        raise InvalidPolicy("an assignment needs a subject")
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
    if scope in ("conversation", "matter") and not _ID.fullmatch(subject):
        raise InvalidPolicy(f"a {scope} assignment names the {scope} id")
    if scope == "default" and subject != DEFAULT_SUBJECT:
        raise InvalidPolicy("the default assignment has no subject")


def assign_policy(scope: str, subject: str, policy_id: int, actor: str) -> WriteOpOf[None]:
    """Govern a conversation (id), a contact (peer name) or a device owner by a policy."""
    _check_scope(scope, subject)

    def op(txn: Txn) -> None:
        policy = get_policy(txn.conn, policy_id)
        if policy.retired_at is not None:
            raise InvalidPolicy(f"policy {policy.name!r} is retired")
        if scope in ("conversation", "matter"):
            table = "conversations" if scope == "conversation" else "matters"
            row = txn.conn.execute(
                f"SELECT 1 FROM {table} WHERE id = ?",  # noqa: S608  (one of two names)
                (int(subject),),
            ).fetchone()
            if row is None:
                raise InvalidPolicy(f"no {scope} {subject}")
        txn.conn.execute(
            "INSERT INTO retention_assignments (scope, subject, policy_id, assigned_by,"
            " assigned_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, subject) DO UPDATE SET"
            " policy_id = excluded.policy_id, assigned_by = excluded.assigned_by,"
            " assigned_at = excluded.assigned_at",
            (scope, subject, policy_id, actor, txn.at_ms),
        )
        details = {"scope": scope, "subject": subject, "policy": policy.name}
        writes.audit(actor, "retention.assign", f"{scope}:{subject}", details)(txn)

    return op


def unassign_policy(scope: str, subject: str, actor: str) -> WriteOpOf[bool]:
    _check_scope(scope, subject)

    def op(txn: Txn) -> bool:
        cur = txn.conn.execute(
            "DELETE FROM retention_assignments WHERE scope = ? AND subject = ?", (scope, subject)
        )
        if not cur.rowcount:
            return False
        details = {"scope": scope, "subject": subject}
        writes.audit(actor, "retention.unassign", f"{scope}:{subject}", details)(txn)
        return True

    return op


@dataclass(frozen=True)
class Assignment:
    scope: str
    subject: str
    policy_id: int
    assigned_by: str
    assigned_at: int


def list_assignments(conn: Connection) -> list[Assignment]:
    return [
        Assignment(str(s), str(subj), int(p), str(by), int(at))
        for s, subj, p, by, at in conn.execute(
            "SELECT scope, subject, policy_id, assigned_by, assigned_at FROM retention_assignments"
            " ORDER BY scope, subject"
        )
    ]
