"""The conversations of a matter, by indexed look-ups (issue #20: flat at 5M), as the
person scope does (office/person_scope.py).

The rule is `office.facts`'s: a conversation belongs to a matter when it is attached
to it (`matter_conversations`, read by its primary key), or when one of its persons
other than its owner is one of the matter's persons (`matter_persons`, by its primary
key). A matter's person's conversations are person_scope's (owner, other party,
sender, mail partner, the senders_removed guard), less those the person owns: facts
drops the owner's name from a conversation's persons, so attaching a lawyer does not
pull in every conversation their phone recorded, even one where they also wrote.
"""

from __future__ import annotations

from collections.abc import Iterable

from strongroom.archive.db import Connection
from strongroom.office import person_scope
from strongroom.office.facts import normalise_person

_MATTER = "SELECT 1 FROM matters WHERE id = ?"
_ATTACHED = "SELECT conversation_id FROM matter_conversations WHERE matter_id = ?"
_PERSONS = "SELECT person FROM matter_persons WHERE matter_id = ?"
_BY_OWNER = "SELECT id FROM conversations WHERE owner = ?"


def matter_conversations(conn: Connection, matter_id: int) -> list[int]:
    """The ids of every conversation of the matter (office.facts's rule), sorted; none
    for a matter that does not exist (as facts, which attaches only known matters)."""
    if conn.execute(_MATTER, (matter_id,)).fetchone() is None:
        return []
    attached = {int(row[0]) for row in conn.execute(_ATTACHED, (matter_id,))}
    persons = [str(row[0]) for row in conn.execute(_PERSONS, (matter_id,))]
    return conversations_of(conn, attached, persons)


def conversations_of(
    conn: Connection, attached: Iterable[int], persons: Iterable[str]
) -> list[int]:
    """`attached` and the conversations of each of `persons` they do not own, sorted."""
    found = set(attached)
    # One spelling per normalised name (as typed: person_scope normalises it itself).
    wanted = {normalise_person(p): p for p in sorted(persons)}
    if not wanted:
        return sorted(found)
    # The owners' spellings, walked once for all the matter's persons.
    owners: dict[str, list[str]] = {}
    for name in person_scope.distinct_names(conn, "owner"):
        key = normalise_person(name)
        if key in wanted:
            owners.setdefault(key, []).append(name)
    for key, person in sorted(wanted.items()):
        owned = {
            int(row[0]) for name in owners.get(key, []) for row in conn.execute(_BY_OWNER, (name,))
        }
        found |= set(person_scope.person_conversations(conn, person)) - owned
    return sorted(found)


__all__ = ["conversations_of", "matter_conversations"]
