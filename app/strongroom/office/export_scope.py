"""What an export holds: a conversation, a person's records, a matter's records or a
list of records, optionally cut to a date range, and who asks for it, for whom and why.

A matter's records are those of every conversation that belongs to it (attached
directly, or through a person attached to it: the rule of `office.facts`).

The date range applies to the phone's time of each record (`sent_at`), the
time the sender saw; `from` is inclusive, `to` exclusive (ms since 1970, UTC).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.office import matter_scope, person_scope, pickers
from strongroom.office.errors import NothingToExport

SCOPE_KINDS = ("conversation", "person", "matter", "records")


@dataclass(frozen=True)
class ExportScope:
    kind: str
    conversation_id: int | None = None
    person: str | None = None
    record_ids: tuple[int, ...] = ()
    matter_id: int | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise NothingToExport(f"export scope must be one of {', '.join(SCOPE_KINDS)}")
        if self.kind == "conversation" and self.conversation_id is None:
            raise NothingToExport("a conversation export names the conversation")
        if self.kind == "person" and not (self.person or "").strip():
            raise NothingToExport("a person export names the person")
        if self.kind == "matter" and self.matter_id is None:
            raise NothingToExport("a matter export names the matter")
        if self.kind == "records" and not self.record_ids:
            raise NothingToExport("a record-list export needs at least one record")
        if self.from_ms is not None and self.to_ms is not None and self.from_ms >= self.to_ms:
            raise NothingToExport("the date range ends before it starts")

    def describe(self) -> str:
        if self.kind == "conversation":
            return f"conversation:{self.conversation_id}"
        if self.kind == "person":
            return f"person:{self.person}"
        if self.kind == "matter":
            return f"matter:{self.matter_id}"
        return f"records:{len(self.record_ids)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "person": self.person,
            "record_ids": list(self.record_ids),
            "matter_id": self.matter_id,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
        }


@dataclass(frozen=True)
class ExportRequest:
    scope: ExportScope
    actor: str  # who exports
    recipient: str  # for whom (a court, the patient, a bar association)
    reason: str  # why

    def __post_init__(self) -> None:
        if not (self.actor.strip() and self.recipient.strip() and self.reason.strip()):
            raise NothingToExport("an export names who makes it, for whom and why")


# Columns, by position: 0 id, 1 record_id, 2 kind, 3 body, 4 signature, 5 log_index,
# 6 received_at, 7 sent_at, 8 destroyed_at, 9 device id, 10 device name, 11 device owner,
# 12 device sign_key, 13 conversation ref, 14 peer, 15 conversation owner.
_COLUMNS = (
    "r.id, r.record_id, r.kind, r.body, r.signature, r.log_index, r.received_at,"
    " r.sent_at, r.destroyed_at, d.id, d.name, d.owner, d.sign_key, c.ref, c.peer, c.owner"
)
_FROM = (
    " FROM records r JOIN devices d ON d.id = r.device_id"
    " JOIN conversations c ON c.id = r.conversation_id"
)
# A list of records: sorted in memory (a selection from a page, not a conversation).
_ORDER = " ORDER BY r.conversation_id, r.sent_at, r.id"
# A conversation, person or matter: its keys in both tables of the conversation index
# (conv_keys), each arm in its index's order and the two merged, so the rows stream in
# reading order without a sort (an export of 100k messages keeps its memory flat).
# The three key columns come last (after the leaf, with_leaf): readers index columns.
_KEY_COLUMNS = ", k.conversation_id AS k_conv, k.sent_at AS k_sent, k.record_id AS k_id"
_KEYS_FROM = (
    " FROM {keys} k JOIN records r ON r.id = k.record_id JOIN devices d ON d.id = r.device_id"
    " JOIN conversations c ON c.id = k.conversation_id"
)
_KEYS_ORDER = " ORDER BY k_conv, k_sent, k_id"


def person_conversations(conn: Connection, person: str) -> list[int]:
    # The same rule as a hold on the person: owner, other party, sender, mail
    # partner (office.facts); an export for a person misses none of theirs. By
    # indexed look-ups, not the facts of every conversation (office/person_scope.py).
    return person_scope.person_conversations(conn, person)


def matter_conversations(conn: Connection, matter_id: int) -> list[int]:
    """The conversations of a matter: attached, or through one of its persons (`facts`).
    By indexed look-ups, not the facts of every conversation (office/matter_scope.py)."""
    return matter_scope.matter_conversations(conn, matter_id)


def _where(conn: Connection, scope: ExportScope) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters: on the keys (`k`) for a conversation, a
    person or a matter, on the records (`r`) for a list of records."""
    args: list[Any]
    column = "k" if scope.kind != "records" else "r"
    if scope.kind == "conversation":
        clauses, args = ["k.conversation_id = ?"], [scope.conversation_id]
    elif scope.kind in ("person", "matter"):
        if scope.kind == "person":
            ids = person_conversations(conn, scope.person or "")
        else:
            ids = matter_conversations(conn, int(scope.matter_id or 0))
        clauses = ["k.conversation_id IN (SELECT value FROM json_each(?))"]
        args = [json.dumps(ids)]
    else:
        clauses = ["r.id IN (SELECT value FROM json_each(?))"]
        args = [json.dumps(list(scope.record_ids))]
    if scope.from_ms is not None:
        clauses.append(f"{column}.sent_at >= ?")
        args.append(scope.from_ms)
    if scope.to_ms is not None:
        clauses.append(f"{column}.sent_at < ?")
        args.append(scope.to_ms)
    return " WHERE " + " AND ".join(clauses), args


def select_records(
    conn: Connection, scope: ExportScope, *, with_leaf: bool = False
) -> Iterator[Any]:
    """Rows for the scope, in reading order, as a cursor (never all in memory).

    `with_leaf` adds column 16, the record's log leaf (NULL for none), read in the
    same statement rather than by one query per record."""
    where, args = _where(conn, scope)
    columns = _COLUMNS + (", l.leaf_data" if with_leaf else "")
    leaf = " LEFT JOIN log_leaves l ON l.idx = r.log_index" if with_leaf else ""
    if scope.kind == "records":
        return conn.execute("SELECT " + columns + _FROM + leaf + where + _ORDER, args)
    arm = "SELECT " + columns + _KEY_COLUMNS + _KEYS_FROM + leaf + where
    return conn.execute(conv_keys.union(arm) + _KEYS_ORDER, conv_keys.per_arm(args))


def count_records(conn: Connection, scope: ExportScope) -> int:
    where, args = _where(conn, scope)
    if scope.kind == "records":
        return int(conn.execute("SELECT count(*)" + _FROM + where, args).fetchone()[0])
    # Every record has a device and a conversation: the keys alone are counted.
    total = conv_keys.summed("SELECT count(*) FROM {keys} k" + where)  # noqa: S608
    return int(conn.execute("SELECT " + total, conv_keys.per_arm(args)).fetchone()[0])


_BY_OWNER_REF = "SELECT id FROM conversations WHERE owner = ? AND ref = ?"
# Two are enough to know a name names several: a contact of every conversation costs
# two rows, not its conversations.
_BY_PEER = "SELECT id FROM conversations INDEXED BY conversations_peer WHERE peer = ? LIMIT 2"


def find_conversation(conn: Connection, ref: str) -> int | None:
    """A conversation by its number (ASCII digits, `#12`), OWNER/REF, its phone reference
    or its other party's name as written or in the usual capitalisations ("m. martin",
    "M. Martin", "M. MARTIN"); None unless exactly one matches.

    By index seeks only (issue #20), never a read of every conversation: the number by
    the key; OWNER/REF by the (owner, ref) index; a phone reference alone by the same
    index once per owner (the practice's staff, not its conversations); a name by
    `conversations_peer`, one seek per spelling (pickers.spellings). A name spelled
    otherwise ("m martin") is no match: `strongroom hold find` gives the number."""
    text = pickers.clean(ref)
    if not text:
        return None
    wanted = pickers.number(text)
    if wanted is not None:
        row = conn.execute("SELECT id FROM conversations WHERE id = ?", (wanted,)).fetchone()
        if row is not None:
            return int(row[0])
    owner, slash, conv = text.partition("/")
    if slash:
        rows = conn.execute(_BY_OWNER_REF, (owner.strip(), conv.strip())).fetchall()
        if len(rows) == 1:
            return int(rows[0][0])
    matches: set[int] = set()
    for name in person_scope.distinct_names(conn, "owner"):
        matches |= {int(i) for (i,) in conn.execute(_BY_OWNER_REF, (name, text))}
    for spelling in pickers.spellings(text):
        matches |= {int(i) for (i,) in conn.execute(_BY_PEER, (spelling,))}
    return matches.pop() if len(matches) == 1 else None
