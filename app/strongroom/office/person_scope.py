"""The conversations a person is part of, by indexed look-ups (issue #20: flat at 5M).

The rule is `office.facts`'s (owner, other party, sender, mail partner of an owner
whose conversation names no other party), compared on normalised names; building the
facts of every conversation and reading every message cost 1.7 s at 5M records. Here:

1. The distinct spellings of each kind of name are walked along their index (one seek
   per distinct name: owners, other parties, senders; a practice has hundreds, not
   millions) and kept when they normalise to the person.
2. The conversations of each kept spelling are read from the same index.
3. Mail partners: the owners the person exchanged box mail with, and their
   conversations that name no other party.
4. The check that replaced "read every message" (schema 11): a pair that left
   `conversation_senders` (erasure's, or a delete or change by any other hand, a
   trigger keeps it in `senders_removed`) is looked up in the messages of its
   conversation; one still written there means the table lost it, and the
   conversation is the person's. A pair that never entered the table (its trigger
   dropped) is what the full verify names (verify_conversation_senders).
"""

from __future__ import annotations

from collections.abc import Iterator

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.office.facts import normalise_person

# One seek each: the next distinct value after `?` along the named index.
_NEXT = {
    "owner": "SELECT owner FROM conversations WHERE owner > ? ORDER BY owner LIMIT 1",
    "peer": "SELECT peer FROM conversations INDEXED BY conversations_peer"
    " WHERE peer > ? ORDER BY peer LIMIT 1",
    "sender": "SELECT sender FROM conversation_senders INDEXED BY conversation_senders_sender"
    " WHERE sender > ? ORDER BY sender LIMIT 1",
    "removed": "SELECT sender FROM senders_removed WHERE sender > ? ORDER BY sender LIMIT 1",
}
_FIRST = {kind: query.replace(" > ?", " >= ''") for kind, query in _NEXT.items()}

_BY_OWNER = "SELECT id FROM conversations WHERE owner = ?"
_BY_PEER = "SELECT id FROM conversations INDEXED BY conversations_peer WHERE peer = ?"
_BY_PEER_AND_OWNER = (
    "SELECT id FROM conversations INDEXED BY conversations_peer WHERE peer = ? AND owner = ?"
)
_BY_SENDER = (
    "SELECT conversation_id FROM conversation_senders"
    " INDEXED BY conversation_senders_sender WHERE sender = ?"
)
_REMOVED = "SELECT conversation_id FROM senders_removed WHERE sender = ?"
# A message of `sender` still in the conversation (its keys, both tables: conv_keys).
_STILL_WRITTEN = "SELECT " + conv_keys.exists(  # noqa: S608 (constants only)
    "SELECT 1 FROM {keys} k JOIN messages m ON m.record_id = k.record_id"
    " WHERE k.conversation_id = ?1 AND m.sender = ?2"
)
_MAIL_PARTNERS = (
    "SELECT DISTINCT d.owner, m.recipient_owner FROM mail m"
    " JOIN devices d ON d.id = m.sender_device"
)


def distinct_names(conn: Connection, kind: str) -> Iterator[str]:
    """Every distinct value of one kind of name, in order, one index seek each."""
    row = conn.execute(_FIRST[kind]).fetchone()
    while row is not None:
        name = str(row[0])
        yield name
        row = conn.execute(_NEXT[kind], (name,)).fetchone()


def _spellings(conn: Connection, kind: str, wanted: set[str]) -> list[str]:
    return [n for n in distinct_names(conn, kind) if normalise_person(n) in wanted]


def _ids(conn: Connection, query: str, *args: str) -> set[int]:
    return {int(row[0]) for row in conn.execute(query, args)}


def person_conversations(conn: Connection, person: str) -> list[int]:
    """The ids of every conversation `person` is part of (office.facts's rule), sorted."""
    wanted = normalise_person(person)
    found: set[int] = set()
    for name in _spellings(conn, "owner", {wanted}):
        found |= _ids(conn, _BY_OWNER, name)
    peers = list(distinct_names(conn, "peer"))
    for name in peers:
        if name.strip() and normalise_person(name) == wanted:
            found |= _ids(conn, _BY_PEER, name)
    for name in _spellings(conn, "sender", {wanted}):
        found |= _ids(conn, _BY_SENDER, name)
    partners = _mail_partners(conn, wanted)
    if partners:
        blank = [p for p in peers if not p.strip()]
        for owner in _spellings(conn, "owner", partners):
            for peer in blank:
                found |= _ids(conn, _BY_PEER_AND_OWNER, peer, owner)
    for name in _spellings(conn, "removed", {wanted}):
        for conversation in _ids(conn, _REMOVED, name) - found:
            if conn.execute(_STILL_WRITTEN, (conversation, name)).fetchone()[0]:
                found.add(conversation)
    return sorted(found)


def _mail_partners(conn: Connection, wanted: str) -> set[str]:
    """The normalised names `wanted` exchanged box mail with (either way)."""
    partners: set[str] = set()
    for sender_owner, recipient in conn.execute(_MAIL_PARTNERS):
        a, b = normalise_person(str(sender_owner)), normalise_person(str(recipient))
        if a == wanted:
            partners.add(b)
        if b == wanted:
            partners.add(a)
    return partners


__all__ = ["distinct_names", "person_conversations"]
