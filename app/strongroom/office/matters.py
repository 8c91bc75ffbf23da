"""Matters (dossiers): a client's file, its conversations and persons, opened and closed.

A matter has a reference (the practice's file number, unique), a client name
and a responsible person. Conversations are attached to it directly, or through
a person attached to it (see `facts`). Its closing date is the start event of
"end of matter" policies ("5 years from the end of the matter"); reopening it
stops that clock. Every change is an audit event.

`close_matter(conversation_id)` / `reopen_matter` close a single conversation
that belongs to no matter (the older, per-conversation form).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOpOf
from strongroom.office.errors import InvalidPolicy
from strongroom.office.facts import normalise_person

MAX_FIELD_CHARS = 200


class InvalidMatter(InvalidPolicy):
    """A matter request that cannot be done (unknown, duplicate reference, empty name)."""


@dataclass(frozen=True)
class Matter:
    id: int
    ref: str
    client: str
    responsible: str
    created_by: str
    created_at: int
    closed_at: int | None
    conversations: tuple[int, ...] = ()
    persons: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "client": self.client,
            "responsible": self.responsible,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "closed_at": self.closed_at,
            "conversations": list(self.conversations),
            "persons": list(self.persons),
        }


def _field(value: str, what: str, *, required: bool = False) -> str:
    value = " ".join(value.split())
    if required and not value:
        raise InvalidMatter(f"a matter needs a {what}")
    if len(value) > MAX_FIELD_CHARS:
        raise InvalidMatter(f"a matter's {what} has at most {MAX_FIELD_CHARS} characters")
    return value


def list_matters(conn: Connection) -> list[Matter]:
    convs: dict[int, list[int]] = {}
    for mid, cid in conn.execute(
        "SELECT matter_id, conversation_id FROM matter_conversations ORDER BY conversation_id"
    ):
        convs.setdefault(int(mid), []).append(int(cid))
    persons: dict[int, list[str]] = {}
    for mid, person in conn.execute("SELECT matter_id, person FROM matter_persons ORDER BY person"):
        persons.setdefault(int(mid), []).append(str(person))
    return [
        _matter(row, convs.get(int(row[0]), []), persons.get(int(row[0]), []))
        for row in conn.execute(_MATTER_BY + " ORDER BY closed_at IS NOT NULL, ref")
    ]


_MATTER_BY = "SELECT id, ref, client, responsible, created_by, created_at, closed_at FROM matters"


def _matter(row: Sequence[Any], conversations: Iterable[int], persons: Iterable[str]) -> Matter:
    """A Matter from a `_MATTER_BY` row and its conversations and persons."""
    i, ref, client, resp, by, at, closed = row
    return Matter(
        int(i),
        str(ref),
        str(client),
        str(resp),
        str(by),
        int(at),
        None if closed is None else int(closed),
        tuple(int(c) for c in conversations),
        tuple(str(p) for p in persons),
    )


def find_matter(conn: Connection, ref_or_id: str) -> Matter:
    """A matter by its reference, or else by its number: key look-ups, whatever the
    number of matters (it read them all, with every matter's persons)."""
    wanted = ref_or_id.strip()
    row = conn.execute(_MATTER_BY + " WHERE ref = ?", (wanted,)).fetchone()
    if row is None and wanted.isascii() and wanted.isdigit() and str(int(wanted)) == wanted:
        row = conn.execute(_MATTER_BY + " WHERE id = ?", (int(wanted),)).fetchone()
    if row is None:
        raise InvalidMatter(f"no matter {wanted!r}")
    conversations = conn.execute(
        "SELECT conversation_id FROM matter_conversations WHERE matter_id = ?"
        " ORDER BY conversation_id",
        (row[0],),
    )
    persons = conn.execute(
        "SELECT person FROM matter_persons WHERE matter_id = ? ORDER BY person", (row[0],)
    )
    return _matter(row, (c for (c,) in conversations), (p for (p,) in persons))


def _matter_row(txn: Txn, matter_id: int) -> tuple[str, int | None]:
    row = txn.conn.execute(
        "SELECT ref, closed_at FROM matters WHERE id = ?", (matter_id,)
    ).fetchone()
    if row is None:
        raise InvalidMatter(f"no matter {matter_id}")
    return str(row[0]), None if row[1] is None else int(row[1])


def create_matter(ref: str, client: str, responsible: str, actor: str) -> WriteOpOf[int]:
    ref = _field(ref, "reference", required=True)
    client = _field(client, "client name")
    responsible = _field(responsible, "responsible person")

    def op(txn: Txn) -> int:
        if txn.conn.execute("SELECT 1 FROM matters WHERE ref = ?", (ref,)).fetchone():
            raise InvalidMatter(f"a matter {ref!r} already exists")
        cur = txn.conn.execute(
            "INSERT INTO matters (ref, client, responsible, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (ref, client, responsible, actor, txn.at_ms),
        )
        matter_id = int(cur.lastrowid or 0)
        details = {"ref": ref, "client": client, "responsible": responsible}
        writes.audit(actor, "matter.create", f"matter:{matter_id}", details)(txn)
        return matter_id

    return op


def rename_matter(
    matter_id: int, ref: str, client: str, responsible: str, actor: str
) -> WriteOpOf[None]:
    ref = _field(ref, "reference", required=True)
    client = _field(client, "client name")
    responsible = _field(responsible, "responsible person")

    def op(txn: Txn) -> None:
        before, _ = _matter_row(txn, matter_id)
        clash = txn.conn.execute(
            "SELECT 1 FROM matters WHERE ref = ? AND id != ?", (ref, matter_id)
        ).fetchone()
        if clash:
            raise InvalidMatter(f"a matter {ref!r} already exists")
        txn.conn.execute(
            "UPDATE matters SET ref = ?, client = ?, responsible = ? WHERE id = ?",
            (ref, client, responsible, matter_id),
        )
        details = {"before": before, "ref": ref, "client": client, "responsible": responsible}
        writes.audit(actor, "matter.rename", f"matter:{matter_id}", details)(txn)

    return op


def set_matter_closed(
    matter_id: int, actor: str, *, closed: bool, closed_at_ms: int | None = None
) -> WriteOpOf[None]:
    """Close (now, or at a given past date) or reopen a matter."""

    def op(txn: Txn) -> None:
        ref, _ = _matter_row(txn, matter_id)
        at = (txn.at_ms if closed_at_ms is None else closed_at_ms) if closed else None
        txn.conn.execute("UPDATE matters SET closed_at = ? WHERE id = ?", (at, matter_id))
        action = "matter.close" if closed else "matter.reopen"
        writes.audit(actor, action, f"matter:{matter_id}", {"ref": ref, "closed_at": at})(txn)

    return op


def attach(
    matter_id: int,
    actor: str,
    *,
    conversation_id: int | None = None,
    person: str | None = None,
    detach: bool = False,
) -> WriteOpOf[None]:
    """Attach (or detach) a conversation or a person to a matter."""
    if (conversation_id is None) == (person is None or not person.strip()):
        raise InvalidMatter("attach a conversation or a person")
    name = " ".join((person or "").split())  # kept as typed, compared normalised
    if person is not None and not normalise_person(name):
        raise InvalidMatter("attach a conversation or a person")

    def op(txn: Txn) -> None:
        ref, _ = _matter_row(txn, matter_id)
        if conversation_id is not None:
            if not txn.conn.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone():
                raise InvalidMatter(f"no conversation {conversation_id}")
            sql = (
                "DELETE FROM matter_conversations WHERE matter_id = ? AND conversation_id = ?"
                if detach
                else "INSERT OR IGNORE INTO matter_conversations VALUES (?, ?)"
            )
            txn.conn.execute(sql, (matter_id, conversation_id))
            target: dict[str, Any] = {"conversation": conversation_id}
        else:
            same = [
                str(p)
                for (p,) in txn.conn.execute(
                    "SELECT person FROM matter_persons WHERE matter_id = ?", (matter_id,)
                )
                if normalise_person(str(p)) == normalise_person(name)
            ]
            if detach:
                for p in same:
                    txn.conn.execute(
                        "DELETE FROM matter_persons WHERE matter_id = ? AND person = ?",
                        (matter_id, p),
                    )
            elif not same:
                txn.conn.execute("INSERT INTO matter_persons VALUES (?, ?)", (matter_id, name))
            target = {"person": name}
        action = "matter.detach" if detach else "matter.attach"
        writes.audit(actor, action, f"matter:{matter_id}", {"ref": ref, **target})(txn)

    return op


def close_matter(
    conversation_id: int, actor: str, *, closed_at_ms: int | None = None
) -> WriteOpOf[None]:
    """Mark a single conversation's matter closed (now, or at a given past date)."""

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


def reopen_matter(conversation_id: int, actor: str) -> WriteOpOf[None]:
    def op(txn: Txn) -> None:
        cur = txn.conn.execute(
            "UPDATE conversations SET closed_at = NULL WHERE id = ?", (conversation_id,)
        )
        if not cur.rowcount:
            raise InvalidPolicy(f"no conversation {conversation_id}")
        details = {"conversation": conversation_id}
        writes.audit(actor, "matter.reopen", f"conversation:{conversation_id}", details)(txn)

    return op
