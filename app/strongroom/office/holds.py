"""Legal holds: a conversation, a person, a matter or a date range frozen against destruction.

A hold beats every policy: while it is active no record it covers is destroyed,
whatever is due, approved or scheduled. Placing and lifting are audit events
(log leaves) naming who did it and why.

A person hold covers every conversation that person is part of: owner, other
party, sender of one of its messages, or (when the other party is unknown) mail
partner of its owner; see `facts`. Names are compared case-insensitively,
spaces squeezed. A matter hold covers every conversation of the matter. A
date-range hold covers every record dated within [from, to], both ends included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from strongroom.archive import conv_keys, writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOpOf
from strongroom.office.errors import InvalidHold, UnknownHold
from strongroom.office.facts import ConversationFacts, normalise_person

HOLD_SCOPES = ("conversation", "person", "matter", "date_range")
MAX_CASE_CHARS = 200

__all__ = ["HOLD_SCOPES", "Hold", "HoldSpec", "lift_hold", "list_holds", "normalise_person"]


@dataclass(frozen=True)
class HoldSpec:
    scope: str
    reason: str
    conversation_id: int | None = None
    person: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None
    matter_id: int | None = None
    case_name: str = ""

    def __post_init__(self) -> None:
        if self.scope not in HOLD_SCOPES:
            raise InvalidHold(f"hold scope must be one of {', '.join(HOLD_SCOPES)}")
        if not self.reason.strip():
            raise InvalidHold("a legal hold needs a reason")
        if self.scope == "conversation" and self.conversation_id is None:
            raise InvalidHold("a conversation hold names the conversation")
        if self.scope == "person" and not (self.person or "").strip():
            raise InvalidHold("a person hold names the person")
        if self.scope == "matter" and self.matter_id is None:
            raise InvalidHold("a matter hold names the matter")
        if len(self.case_name) > MAX_CASE_CHARS:
            raise InvalidHold(f"a case name has at most {MAX_CASE_CHARS} characters")
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
        if self.scope == "matter":
            return f"matter:{self.matter_id}"
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

    def covers(self, facts: ConversationFacts, record_ms: int) -> bool:
        """Pure: does this (active) hold cover a record of this conversation, of this date?"""
        if not self.active:
            return False
        spec = self.spec
        if spec.scope == "conversation":
            return spec.conversation_id == facts.id
        if spec.scope == "person":
            return facts.involves(spec.person or "")
        if spec.scope == "matter":
            return any(m.id == spec.matter_id for m in facts.matters)
        assert spec.from_ms is not None and spec.to_ms is not None
        return spec.from_ms <= record_ms <= spec.to_ms


_COLUMNS = (
    "id, scope, reason, conversation_id, person, from_ms, to_ms, placed_by, placed_at,"
    " lifted_by, lifted_at, lift_reason, matter_id, case_name"
)


def _hold(row: Any) -> Hold:
    spec = HoldSpec(
        scope=str(row[1]),
        reason=str(row[2]),
        conversation_id=None if row[3] is None else int(row[3]),
        person=None if row[4] is None else str(row[4]),
        from_ms=None if row[5] is None else int(row[5]),
        to_ms=None if row[6] is None else int(row[6]),
        matter_id=None if row[12] is None else int(row[12]),
        case_name=str(row[13] or ""),
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


def place_hold(spec: HoldSpec, actor: str) -> WriteOpOf[int]:
    """Place a legal hold; returns its id."""

    def op(txn: Txn) -> int:
        if spec.conversation_id is not None:
            row = txn.conn.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (spec.conversation_id,)
            ).fetchone()
            if row is None:
                raise InvalidHold(f"no conversation {spec.conversation_id}")
        if spec.matter_id is not None:
            row = txn.conn.execute(
                "SELECT 1 FROM matters WHERE id = ?", (spec.matter_id,)
            ).fetchone()
            if row is None:
                raise InvalidHold(f"no matter {spec.matter_id}")
        cur = txn.conn.execute(
            "INSERT INTO legal_holds (scope, conversation_id, person, from_ms, to_ms, matter_id,"
            " case_name, reason, placed_by, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                spec.scope,
                spec.conversation_id,
                spec.person,
                spec.from_ms,
                spec.to_ms,
                spec.matter_id,
                spec.case_name,
                spec.reason,
                actor,
                txn.at_ms,
            ),
        )
        hold_id = int(cur.lastrowid or 0)
        details = {
            "hold": hold_id,
            "subject": spec.subject(),
            "case": spec.case_name,
            "reason": spec.reason,
        }
        writes.audit(actor, "hold.place", spec.subject(), details)(txn)
        return hold_id

    return op


def lift_hold(hold_id: int, actor: str, reason: str) -> WriteOpOf[None]:
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


@dataclass(frozen=True)
class HoldReach:
    """What an active hold protects right now: conversations and records still held."""

    conversations: int
    records: int


def hold_reach(conn: Connection, hold_list: list[Hold]) -> dict[int, HoldReach]:
    """Counts for the holds list: how many conversations and live records each covers.

    Index reads only, so a page costs what the holds cover, not the archive's size
    (tests/test_holds_page.py checks every statement's plan): a conversation hold counts
    its conversation; a person or matter hold the conversations person_scope and
    matter_scope find by name (office.facts's rule, without building every
    conversation's facts); a date-range hold the records dated in the range, read by
    phone and date, or the conversations alive across it when that costs less
    (`_live_counts_between`).
    """
    from strongroom.office.matter_scope import matter_conversations
    from strongroom.office.person_scope import person_conversations

    reach = {h.id: HoldReach(0, 0) for h in hold_list}
    for hold in hold_list:
        if not hold.active:
            continue
        spec = hold.spec
        if spec.scope == "conversation":
            counts = _live_counts(conn, [spec.conversation_id or 0])
        elif spec.scope == "person":
            counts = _live_counts(conn, person_conversations(conn, spec.person or ""))
        elif spec.scope == "matter":
            counts = _live_counts(conn, matter_conversations(conn, spec.matter_id or 0))
        else:
            counts = _live_counts_between(conn, spec.from_ms or 0, spec.to_ms or 0)
        reach[hold.id] = HoldReach(sum(1 for n in counts if n), sum(counts))
    return reach


def _live_counts(conn: Connection, conversation_ids: list[int]) -> list[int]:
    """Live records of each conversation: all of them (both tables of the conversation
    index, conv_keys) minus the destroyed ones (records_destroyed), all counted in
    indexes, no record row read."""
    if not conversation_ids:
        return []
    every = conv_keys.summed("SELECT count(*) FROM {keys} k WHERE k.conversation_id = j.value")
    rows = conn.execute(
        f"SELECT {every} - (SELECT count(*) FROM records r"  # noqa: S608
        " WHERE r.conversation_id = j.value AND r.destroyed_at IS NOT NULL) FROM json_each(?) j",
        (json.dumps(conversation_ids),),
    )
    return [int(n) for (n,) in rows]


# A date-range hold's reach is read from the cheaper side (docs/records-office.md,
# measured at 5M records): the records dated in the range, one record row each (~1.5 µs
# a record), while they are fewer than RANGE_RECORDS or than one per
# CONVERSATIONS_PER_RECORD conversations; past that, each conversation alive across the
# range counted in the conversation index (~0.1 µs a conversation, ~0.3 µs a record).
RANGE_RECORDS = 1_000
CONVERSATIONS_PER_RECORD = 8
# records_dedup leads with (device_id, sent_at): one range bounded on both ends per
# phone (the staff's, revoked ones too: a few dozen); the index holds both columns.
_BY_PHONE = (
    " FROM devices d CROSS JOIN records r INDEXED BY records_dedup"
    " ON r.device_id = d.id AND r.sent_at BETWEEN ?1 AND ?2"
)
_RANGE_UP_TO = "SELECT count(*) FROM (SELECT 1" + _BY_PHONE + " LIMIT ?3)"  # noqa: S608
_RANGE_COUNTS = (
    "SELECT count(*)" + _BY_PHONE + " WHERE r.destroyed_at IS NULL GROUP BY r.conversation_id"
)


def _live_counts_between(conn: Connection, from_ms: int, to_ms: int) -> list[int]:
    """Live records dated in [from_ms, to_ms], per conversation that has one. Few records
    in the range (the usual hold: recent dates): they are read phone by phone, each
    record's row for its conversation and whether it was destroyed, so the cost follows
    the records the range covers, not the conversations or the archive. Many (a range of
    years): the conversations alive across it are counted instead, which costs less."""
    (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM conversations").fetchone()
    budget = max(RANGE_RECORDS, int(top) // CONVERSATIONS_PER_RECORD)
    (records,) = conn.execute(_RANGE_UP_TO, (from_ms, to_ms, budget)).fetchone()
    if records < budget:
        rows = conn.execute(_RANGE_COUNTS, (from_ms, to_ms))
    else:
        rows = conn.execute(_ALIVE_ACROSS, (from_ms, to_ms))
    return [int(n) for (n,) in rows]


# Each conversation whose oldest live record (conv_live, by its index) is no later than
# the range's end and newest record (conversations.last_at) no earlier than its start,
# its keys in the range counted in the conversation index, less the destroyed ones.
_ALIVE_ACROSS = (
    "SELECT "  # noqa: S608 (constants)
    + conv_keys.summed(
        "SELECT count(*) FROM {keys} k WHERE k.conversation_id = l.conversation_id"
        " AND k.sent_at BETWEEN ?1 AND ?2"
    )
    + " - (SELECT count(*) FROM records r"
    " WHERE r.conversation_id = l.conversation_id AND r.sent_at BETWEEN ?1 AND ?2"
    " AND r.destroyed_at IS NOT NULL)"
    " FROM conv_live l INDEXED BY conv_live_from CROSS JOIN conversations c"
    " ON c.id = l.conversation_id WHERE l.live_from <= ?2 AND c.last_at >= ?1"
)
