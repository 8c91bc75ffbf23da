"""Legal holds: a conversation, a person or a date range frozen against destruction.

A hold beats every policy: while it is active no record it covers is destroyed,
whatever is due, approved or scheduled. Placing and lifting are audit events
(log leaves) naming who did it and why.

A person hold covers every conversation whose contact (``peer``) or owner is that
person (compared case-insensitively, surrounding spaces ignored). A date-range
hold covers every record dated within [from, to], both ends included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOp
from strongroom.office.errors import InvalidHold, UnknownHold

HOLD_SCOPES = ("conversation", "person", "date_range")


def normalise_person(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class HoldSpec:
    scope: str
    reason: str
    conversation_id: int | None = None
    person: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def __post_init__(self) -> None:
        if self.scope not in HOLD_SCOPES:
            raise InvalidHold(f"hold scope must be one of {', '.join(HOLD_SCOPES)}")
        if not self.reason.strip():
            raise InvalidHold("a legal hold needs a reason")
        if self.scope == "conversation" and self.conversation_id is None:
            raise InvalidHold("a conversation hold names the conversation")
        if self.scope == "person" and not (self.person or "").strip():
            raise InvalidHold("a person hold names the person")
        if self.scope == "date_range":
            if self.from_ms is None or self.to_ms is None:
                raise InvalidHold("a date-range hold needs both dates")
            if self.from_ms > self.to_ms:
                raise InvalidHold("the hold's start date is after its end date")

    def subject(self) -> str:
        if self.scope == "conversation":
            return f"conversation:{self.conversation_id}"
        if self.scope == "person":
            return f"person:{self.person}"
        return f"dates:{self.from_ms}..{self.to_ms}"


@dataclass(frozen=True)
class Hold:
    id: int
    spec: HoldSpec
    placed_by: str
    placed_at: int
    lifted_by: str | None
    lifted_at: int | None
    lift_reason: str | None

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def covers(self, conversation_id: int, peer: str, owner: str, record_ms: int) -> bool:
        """Pure: does this (active) hold cover a record with these facts?"""
        if not self.active:
            return False
        spec = self.spec
        if spec.scope == "conversation":
            return spec.conversation_id == conversation_id
        if spec.scope == "person":
            wanted = normalise_person(spec.person or "")
            return wanted in (normalise_person(peer), normalise_person(owner))
        assert spec.from_ms is not None and spec.to_ms is not None
        return spec.from_ms <= record_ms <= spec.to_ms


_COLUMNS = (
    "id, scope, reason, conversation_id, person, from_ms, to_ms, placed_by, placed_at,"
    " lifted_by, lifted_at, lift_reason"
)


def _hold(row: Any) -> Hold:
    spec = HoldSpec(
        scope=str(row[1]),
        reason=str(row[2]),
        conversation_id=None if row[3] is None else int(row[3]),
        person=None if row[4] is None else str(row[4]),
        from_ms=None if row[5] is None else int(row[5]),
        to_ms=None if row[6] is None else int(row[6]),
    )
    return Hold(
        id=int(row[0]),
        spec=spec,
        placed_by=str(row[7]),
        placed_at=int(row[8]),
        lifted_by=None if row[9] is None else str(row[9]),
        lifted_at=None if row[10] is None else int(row[10]),
        lift_reason=None if row[11] is None else str(row[11]),
    )


def list_holds(conn: Connection, *, active_only: bool = False) -> list[Hold]:
    where = " WHERE lifted_at IS NULL" if active_only else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM legal_holds{where} ORDER BY placed_at, id")  # noqa: S608
    return [_hold(row) for row in rows]


def place_hold(spec: HoldSpec, actor: str) -> WriteOp:
    """Place a legal hold; returns its id."""

    def op(txn: Txn) -> int:
        if spec.conversation_id is not None:
            row = txn.conn.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (spec.conversation_id,)
            ).fetchone()
            if row is None:
                raise InvalidHold(f"no conversation {spec.conversation_id}")
        cur = txn.conn.execute(
            "INSERT INTO legal_holds (scope, conversation_id, person, from_ms, to_ms, reason,"
            " placed_by, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                spec.scope,
                spec.conversation_id,
                spec.person,
                spec.from_ms,
                spec.to_ms,
                spec.reason,
                actor,
                txn.at_ms,
            ),
        )
        hold_id = int(cur.lastrowid or 0)
        details = {"hold": hold_id, "subject": spec.subject(), "reason": spec.reason}
        writes.audit(actor, "hold.place", spec.subject(), details)(txn)
        return hold_id

    return op


def lift_hold(hold_id: int, actor: str, reason: str) -> WriteOp:
    """Lift an active hold; its records fall under their policy again at the next run."""
    if not reason.strip():
        raise InvalidHold("lifting a hold needs a reason")

    def op(txn: Txn) -> None:
        row = txn.conn.execute(
            f"SELECT {_COLUMNS} FROM legal_holds WHERE id = ?",  # noqa: S608
            (hold_id,),
        ).fetchone()
        if row is None or row[10] is not None:
            raise UnknownHold(f"no active legal hold {hold_id}")
        hold = _hold(row)
        txn.conn.execute(
            "UPDATE legal_holds SET lifted_by = ?, lifted_at = ?, lift_reason = ? WHERE id = ?",
            (actor, txn.at_ms, reason, hold_id),
        )
        details = {"hold": hold_id, "subject": hold.spec.subject(), "reason": reason}
        writes.audit(actor, "hold.lift", hold.spec.subject(), details)(txn)

    return op
