"""Who and what a conversation involves: the facts holds and policies are matched against.

A hold "on dr.martin" must protect every conversation dr.martin is part of,
whichever phone recorded it. A conversation's persons are therefore:

* its owner (the staff member whose phone recorded it);
* its other party (``conversations.peer``, from the records' ``peer`` field);
* every sender of one of its messages (``messages.sender``, read from
  ``conversation_senders``, one row per conversation and sender);
* when the other party is unknown (older phones sent no ``peer``), everyone the
  owner exchanged box mail with: when in doubt, protect.

Names are compared normalised (`normalise_person`: case, accents, spaces and
punctuation ignored). A
conversation belongs to a matter when it is attached to it, or when one of its
persons other than its owner is attached to it (attaching the client attaches
their conversations; attaching a lawyer does not pull in all of theirs).
"""

from __future__ import annotations

import functools
import itertools
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from strongroom.archive.db import Connection


@functools.lru_cache(maxsize=4096)
def normalise_person(name: str) -> str:
    """Case, accents, spaces and punctuation ignored: "Dr. Martin" = "dr.martin" = "DR MARTIN".

    Looser than equality on purpose: a hold must not miss a person spelled
    differently by two phones (when in doubt, protect).
    """
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isalnum()).casefold()


@dataclass(frozen=True)
class MatterFacts:
    id: int
    ref: str
    closed_at: int | None


@dataclass
class ConversationFacts:
    id: int
    owner: str
    peer: str
    last_at: int
    closed_at: int | None  # a close on the conversation itself (before matters existed)
    persons: set[str] = field(default_factory=set)  # normalised
    matters: list[MatterFacts] = field(default_factory=list)

    def involves(self, person: str) -> bool:
        return normalise_person(person) in self.persons

    @property
    def end_of_matter(self) -> int | None:
        """When its matter ended: None while any of its matters (or itself) is open."""
        if not self.matters:
            return self.closed_at
        if any(m.closed_at is None for m in self.matters):
            return None
        return max(m.closed_at for m in self.matters if m.closed_at is not None)


def _has_table(conn: Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return int(row[0]) == 1


def load_facts(
    conn: Connection,
    extra_senders: Iterable[tuple[int, str]] = (),
    only: Iterable[int] | None = None,
) -> dict[int, ConversationFacts]:
    """Every conversation's persons and matters (one pass, a few grouped queries).

    `extra_senders`: (conversation, sender) pairs read from `messages` that
    `conversation_senders` lacks (retention's re-check before destroying).
    `only`: these conversations alone (by their keys), the others not read."""
    facts: dict[int, ConversationFacts] = {}
    where: str = ""
    params: tuple[str, ...] = ()
    if only is not None:
        where = " WHERE {} IN (SELECT value FROM json_each(?))"
        params = (json.dumps(sorted(only)),)
    for cid, owner, peer, last_at, closed_at in conn.execute(
        "SELECT id, owner, peer, last_at, closed_at FROM conversations"  # noqa: S608
        + where.format("id"),
        params,
    ):
        f = ConversationFacts(
            int(cid),
            str(owner),
            str(peer),
            int(last_at),
            None if closed_at is None else int(closed_at),
        )
        f.persons.add(normalise_person(f.owner))
        if f.peer.strip():
            f.persons.add(normalise_person(f.peer))
        facts[f.id] = f
    # One row per conversation and sender (schema 6), not one per message.
    senders = conn.execute(
        "SELECT conversation_id, sender FROM conversation_senders"  # noqa: S608
        + where.format("conversation_id"),
        params,
    )
    for cid, sender in itertools.chain(senders, extra_senders):
        if int(cid) in facts and str(sender).strip():
            facts[int(cid)].persons.add(normalise_person(str(sender)))
    partners: dict[str, set[str]] = {}
    for sender_owner, recipient in conn.execute(
        "SELECT DISTINCT d.owner, m.recipient_owner FROM mail m"
        " JOIN devices d ON d.id = m.sender_device"
    ):
        a, b = normalise_person(str(sender_owner)), normalise_person(str(recipient))
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    for f in facts.values():
        if not f.peer.strip():
            f.persons |= partners.get(normalise_person(f.owner), set())
    if _has_table(conn, "matters"):
        _attach_matters(conn, facts)
    return facts


def senders_not_kept(
    conn: Connection, conversations: Iterable[int] | None = None
) -> list[tuple[int, str]]:
    """The (conversation, sender) pairs of `messages` (in `conversations`, or in the
    whole archive) that `conversation_senders` lacks: none unless the table was
    tampered with or damaged. The whole archive reads every message (a probe of the
    table's key each): for an export, not for a page."""
    where = ""
    params: tuple[str, ...] = ()
    if conversations is not None:
        ids = sorted(set(conversations))
        if not ids:
            return []
        where, params = (
            " m.conversation_id IN (SELECT value FROM json_each(?)) AND",
            (json.dumps(ids),),
        )
    return [
        (int(cid), str(sender))
        for cid, sender in conn.execute(
            "SELECT DISTINCT m.conversation_id, m.sender FROM messages m"  # noqa: S608
            f" WHERE{where} NOT EXISTS"
            " (SELECT 1 FROM conversation_senders s"
            " WHERE s.conversation_id = m.conversation_id AND s.sender = m.sender)",
            params,
        )
    ]


def _attach_matters(conn: Connection, facts: dict[int, ConversationFacts]) -> None:
    matters = {
        int(i): MatterFacts(int(i), str(ref), None if c is None else int(c))
        for i, ref, c in conn.execute("SELECT id, ref, closed_at FROM matters")
    }
    members: dict[int, set[int]] = {}
    for mid, cid in conn.execute("SELECT matter_id, conversation_id FROM matter_conversations"):
        members.setdefault(int(cid), set()).add(int(mid))
    by_person: dict[str, set[int]] = {}
    for mid, person in conn.execute("SELECT matter_id, person FROM matter_persons"):
        by_person.setdefault(normalise_person(str(person)), set()).add(int(mid))
    if not matters:
        return
    for f in facts.values():
        ids = set(members.get(f.id, ()))
        if by_person:
            for person in f.persons - {normalise_person(f.owner)}:
                ids |= by_person.get(person, set())
        if ids:
            f.matters = [matters[m] for m in sorted(ids) if m in matters]


def persons_of(conn: Connection) -> list[str]:
    """Everyone the archive knows by name (owners, other parties, senders), for pickers.

    Walked along each name's index, one seek per distinct name (schema 11), not a read
    of every conversation and sender row."""
    from strongroom.office.person_scope import distinct_names

    # In one order over the three (as a UNION gave them): the same spelling is shown
    # for two that normalise alike, whichever kind of name each is.
    every = {name for kind in ("owner", "peer", "sender") for name in distinct_names(conn, kind)}
    names: dict[str, str] = {}
    for name in sorted(every):
        text = name.strip()
        if text:
            names.setdefault(normalise_person(text), text)
    return sorted(names.values(), key=normalise_person)
