"""Search-as-you-type for the records office's forms: a conversation, a person or a matter
found by the first letters typed, each by an index (issue #20: flat at 5M records).

The /office page used to send every conversation and every person name to the browser
for its pickers: its cost followed the conversations (119 ms at 1M records). Here a
look-up costs a few index seeks and at most `LIMIT` rows, whatever the archive's size:

- a conversation by its number (`123` or `#123`), by its owner's name (the index on
  (owner, ref)), by `OWNER/REF` (the same index), or by its other party's name
  (`conversations_peer`). A phone's conversation id alone (`ref`) has no index of its
  own: type `OWNER/REF` or the number;
- a person among owners, other parties and senders (`conversations`' two indexes and
  `conversation_senders_sender`), one seek per distinct name returned;
- a matter by its reference (`matters.ref` is UNIQUE, so indexed) or its number.

Prefixes are compared as typed and in the usual capitalisations ("martin", "Martin",
"MARTIN"): an index is ordered by the exact spelling. `resolve_*` reads a typed value
the way a form without JavaScript sends it: one match, or a clear error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from strongroom.archive.db import Connection
from strongroom.office.errors import OfficeError
from strongroom.office.facts import normalise_person

LIMIT = 20
MAX_QUERY_CHARS = 100
KINDS = ("conversation", "person", "matter")
# Above every character: the end of a prefix's range (SQLite compares UTF-8 bytes).
_TOP = "\U0010ffff"


class NoMatch(OfficeError):
    """What was typed names nothing, or several things (`several`): the form says which."""

    def __init__(self, message: str, *, several: bool = False) -> None:
        super().__init__(message)
        self.several = several


@dataclass(frozen=True)
class Found:
    value: str  # what the form sends: a conversation's or matter's number, a person's name
    label: str  # what the office sees
    detail: str = ""  # what tells two alike labels apart: the number, the phone's id


def _spellings(text: str) -> list[str]:
    """The typed prefix as typed, and capitalised the usual ways (no duplicates)."""
    forms = [text, text.lower(), text.upper(), text[:1].upper() + text[1:], text.title()]
    return list(dict.fromkeys(f for f in forms if f))


spellings = _spellings  # the same, for the other look-ups by name (export_scope)


def clean(text: str) -> str:
    """A typed query: no control characters, spaces squeezed, at most MAX_QUERY_CHARS."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:MAX_QUERY_CHARS]


# -- conversations ---------------------------------------------------------------------

_CONV = "SELECT id, owner, ref, peer FROM conversations"
_BY_ID = _CONV + " WHERE id = ?"
_BY_IDS = _CONV + " WHERE id IN (SELECT value FROM json_each(?))"  # noqa: S608 (constants)
_BY_OWNER = _CONV + " WHERE owner >= ? AND owner < ? ORDER BY owner, ref LIMIT ?"
_BY_OWNER_REF = _CONV + " WHERE owner = ? AND ref >= ? AND ref < ? ORDER BY ref LIMIT ?"
# A label as the page shows it, typed back ("OWNER ↔ PEER", or "OWNER ↔ REF" without peer).
_BY_LABEL = (
    _CONV + " INDEXED BY conversations_peer WHERE peer = ?2 AND owner = ?1"
    " UNION " + _CONV + " WHERE owner = ?1 AND ref = ?2 AND peer = ''"
)
_BY_PEER = (
    _CONV + " INDEXED BY conversations_peer WHERE peer >= ? AND peer < ?"
    " ORDER BY peer, owner LIMIT ?"
)


def conversation_label(owner: str, ref: str, peer: str) -> str:
    """As the office pages name a conversation: its owner and other party (or its id)."""
    return f"{owner} ↔ {peer or ref}"


def conversation_names(conn: Connection, ids: Iterable[int | None]) -> dict[int, str]:
    """The labels of these conversations (each read by its key), for a page listing them."""
    wanted = sorted({i for i in ids if i is not None})
    rows = conn.execute(_BY_IDS, (json.dumps(wanted),))
    return {int(cid): conversation_label(str(o), str(ref), str(peer)) for cid, o, ref, peer in rows}


def _conversations(conn: Connection, sql: str, args: Iterable[object]) -> list[Found]:
    return [
        Found(str(cid), conversation_label(str(owner), str(ref), str(peer)), f"#{cid} · {ref}")
        for cid, owner, ref, peer in conn.execute(sql, tuple(args))
    ]


# A number as typed: ASCII digits only (str.isdigit() also takes "²" or "١٢", which
# int() refuses or reads), at most 18 of them (an SQLite integer).
_NUMBER = re.compile(r"#?([0-9]{1,18})")


def number(text: str) -> int | None:
    """The conversation's or matter's number a typed value is (`12`, `#12`), else None."""
    match = _NUMBER.fullmatch(text)
    return int(match[1]) if match else None


def find_conversations(conn: Connection, text: str, limit: int = LIMIT) -> list[Found]:
    """Conversations whose number, owner, OWNER/REF or other party starts with `text`, or
    the one whose label (`OWNER ↔ PEER`) it is."""
    text = clean(text)
    if not text:
        return []
    found: dict[str, Found] = {}
    wanted = number(text)
    if wanted is not None:
        found |= {f.value: f for f in _conversations(conn, _BY_ID, (wanted,))}
    owner, slash, ref = text.partition("/")
    left, arrow, right = text.partition("↔")
    if arrow:
        args = (left.strip(), right.strip())
        found |= {f.value: f for f in _conversations(conn, _BY_LABEL, args)}
    elif slash:
        ranged = (owner.strip(), ref.strip(), ref.strip() + _TOP, limit)
        found |= {f.value: f for f in _conversations(conn, _BY_OWNER_REF, ranged)}
    else:
        for prefix in _spellings(text):
            for sql in (_BY_OWNER, _BY_PEER):
                for f in _conversations(conn, sql, (prefix, prefix + _TOP, limit)):
                    found.setdefault(f.value, f)
    return sorted(found.values(), key=lambda f: f.label.casefold())[:limit]


def resolve_conversation(conn: Connection, text: str) -> int:
    """The one conversation a typed value names (a number, OWNER/REF, or the first letters
    of its owner or other party), else NoMatch saying why."""
    typed = clean(text)
    wanted = number(typed)
    if wanted is not None:
        if conn.execute(_BY_ID, (wanted,)).fetchone() is None:
            raise NoMatch(f"no conversation number {wanted}")
        return wanted
    found = find_conversations(conn, typed, limit=LIMIT + 1)
    exact = [f for f in found if _exact(typed, f.label)]
    return int(_one("conversation", typed, exact if len(exact) == 1 else found).value)


def _exact(typed: str, label: str) -> bool:
    """The typed value is the whole label, or one of its two names, spelled loosely."""
    names = [label, *label.split(" ↔ ", 1)]
    return any(normalise_person(typed) == normalise_person(n) for n in names)


def _one(kind: str, typed: str, found: list[Found]) -> Found:
    if not typed:
        raise NoMatch(f"name the {kind}")
    if not found:
        raise NoMatch(f"no {kind} matches {typed!r}")
    if len(found) > 1:
        some = ", ".join(f.label for f in found[:3])
        raise NoMatch(f"{typed!r} matches several: {some}… type more, or its number", several=True)
    return found[0]


# -- persons -----------------------------------------------------------------------------

# The next distinct name after ?1 and below ?2 along each name's index: one seek each.
_NEXT_NAME = {
    "owner": "SELECT owner FROM conversations WHERE owner > ?1 AND owner < ?2"
    " ORDER BY owner LIMIT 1",
    "peer": "SELECT peer FROM conversations INDEXED BY conversations_peer"
    " WHERE peer > ?1 AND peer < ?2 ORDER BY peer LIMIT 1",
    "sender": "SELECT sender FROM conversation_senders INDEXED BY conversation_senders_sender"
    " WHERE sender > ?1 AND sender < ?2 ORDER BY sender LIMIT 1",
}
_FIRST_NAME = {kind: sql.replace(" > ?1", " >= ?1") for kind, sql in _NEXT_NAME.items()}


def _names(conn: Connection, kind: str, prefix: str, limit: int) -> list[str]:
    names: list[str] = []
    row = conn.execute(_FIRST_NAME[kind], (prefix, prefix + _TOP)).fetchone()
    while row is not None and len(names) < limit:
        names.append(str(row[0]))
        row = conn.execute(_NEXT_NAME[kind], (names[-1], prefix + _TOP)).fetchone()
    return names


def find_persons(conn: Connection, text: str, limit: int = LIMIT) -> list[Found]:
    """Names (owners, other parties, senders) starting with `text`; one spelling each."""
    text = clean(text)
    if not text:
        return []
    names: dict[str, str] = {}
    for prefix in _spellings(text):
        for kind in _NEXT_NAME:
            for name in _names(conn, kind, prefix, limit):
                if name.strip():
                    names.setdefault(normalise_person(name), name.strip())
    ordered = sorted(names.values(), key=normalise_person)[:limit]
    return [Found(name, name) for name in ordered]


# -- matters -----------------------------------------------------------------------------

_MATTER = "SELECT id, ref, client FROM matters"
_MATTER_BY_ID = _MATTER + " WHERE id = ?"
_MATTER_BY_REF = _MATTER + " WHERE ref >= ? AND ref < ? ORDER BY ref LIMIT ?"


def matter_label(ref: str, client: str) -> str:
    return f"{ref} {client}".strip()


def find_matters(conn: Connection, text: str, limit: int = LIMIT) -> list[Found]:
    """Matters whose number or reference starts with `text`."""
    text = clean(text)
    if not text:
        return []
    found: dict[str, Found] = {}
    wanted = number(text)
    rows = list(conn.execute(_MATTER_BY_ID, (wanted,))) if wanted is not None else []
    for prefix in _spellings(text):
        rows += conn.execute(_MATTER_BY_REF, (prefix, prefix + _TOP, limit)).fetchall()
    for mid, ref, client in rows:
        found.setdefault(str(mid), Found(str(mid), matter_label(str(ref), str(client)), f"#{mid}"))
    return sorted(found.values(), key=lambda f: f.label.casefold())[:limit]


def resolve_matter(conn: Connection, text: str) -> int:
    """The one matter a typed value names (its number, its reference, or the first
    letters of a single one), else NoMatch saying why."""
    typed = clean(text)
    wanted = number(typed)
    if wanted is not None and conn.execute(_MATTER_BY_ID, (wanted,)).fetchone() is not None:
        return wanted
    row = conn.execute("SELECT id FROM matters WHERE ref = ?", (typed,)).fetchone()
    if row is not None:
        return int(row[0])
    return int(_one("matter", typed, find_matters(conn, typed, limit=LIMIT + 1)).value)


def find(conn: Connection, kind: str, text: str, limit: int = LIMIT) -> list[Found]:
    """The search endpoint's and `strongroom hold find`'s answer."""
    if kind == "conversation":
        return find_conversations(conn, text, limit)
    if kind == "person":
        return find_persons(conn, text, limit)
    if kind == "matter":
        return find_matters(conn, text, limit)
    raise NoMatch(f"search for one of {', '.join(KINDS)}")


__all__ = [
    "KINDS",
    "LIMIT",
    "MAX_QUERY_CHARS",
    "Found",
    "NoMatch",
    "clean",
    "conversation_label",
    "conversation_names",
    "find",
    "find_conversations",
    "find_matters",
    "find_persons",
    "number",
    "resolve_conversation",
    "resolve_matter",
    "spellings",
]
