"""Message search for the web UI, the CLI and exports: the typed words folded as
the full-text index spells them, filters, one conversation's messages (read only)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from math import isqrt

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.archive.fts_terms import completions
from strongroom.archive.schema import LIGATURES, MESSAGE_HAS_ATTACHMENT, MESSAGE_TEXT

_TOKEN = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 16


def fold_ligatures(text: str) -> str:
    """œ/æ spelled out, as the full-text index holds them (schema migration 3)."""
    for ligature, spelled in LIGATURES.items():
        text = text.replace(ligature, spelled)
    return text


def fts_query(text: str) -> str | None:
    """Turn what a person typed into a safe FTS5 query (no FTS syntax gets through).

    Each word becomes a quoted prefix term, all terms must match. Accents are
    folded by the index's tokenizer, for the query as for the text.
    """
    # NFC first: in decomposed text (macOS, some pastes) a combining accent is
    # not a word character and would split "réunion" into "re" + "union".
    typed = fold_ligatures(unicodedata.normalize("NFC", text))
    terms = _TOKEN.findall(typed)[:MAX_QUERY_TERMS]
    if not terms:
        return None
    return " ".join(f'"{term}"*' for term in terms)


# Letters whose folding by the index's tokenizer (unicode61, remove_diacritics 2:
# lower case, accents dropped) Python reproduces exactly. A word made of anything
# else keeps the prefix query: the expansion must look up the very key FTS5 holds.
_FOLDS = {c: c for c in "abcdefghijklmnopqrstuvwxyz0123456789"}
_FOLDS.update({c.upper(): c for c in "abcdefghijklmnopqrstuvwxyz"})
for _plain, _accented in {
    "a": "àáâäãå",
    "c": "ç",
    "e": "éèêë",
    "i": "íìîï",
    "n": "ñ",
    "o": "óòôöõ",
    "u": "úùûü",
    "y": "ýÿ",
}.items():
    _FOLDS.update({c: _plain for c in _accented})
    _FOLDS.update({c.upper(): _plain for c in _accented if c.upper() != c})
del _plain, _accented


def _expanded_query(conn: Connection, text: str) -> str | None:
    """fts_query with each word rewritten as the OR of the indexed words it starts
    (fts_terms: the same matches at a bounded cost). A word it cannot expand surely,
    or that starts no indexed word (its prefix doclist is empty, hence cheap), stays
    a prefix term."""
    typed = fold_ligatures(unicodedata.normalize("NFC", text))
    groups: list[str] = []
    for term in _TOKEN.findall(typed)[:MAX_QUERY_TERMS]:
        found = None
        if all(c in _FOLDS for c in term):
            found = completions(conn, "messages_fts", "".join(_FOLDS[c] for c in term))
        if found:
            groups.append("(" + " OR ".join(f'"{word}"' for word in found) + ")")
        else:
            groups.append(f'"{term}"*')
    return " AND ".join(groups) if groups else None


@dataclass(frozen=True)
class MessageHit:
    record_row: int
    conversation_id: int
    owner: str
    peer: str
    direction: str
    sender: str
    text: str | None
    sent_at: int
    device_name: str
    has_attachment: bool
    destroyed: bool
    conversation_ref: str


@dataclass(frozen=True)
class SearchFilters:
    owner: str | None = None
    device_id: int | None = None
    conversation_id: int | None = None
    direction: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    has_attachment: bool | None = None


# The text as schema.MESSAGE_TEXT reads it: from the signed record (schema 8), or
# messages.text for rows written before.
_HIT_COLUMNS = (
    "m.record_id, m.conversation_id, c.owner, c.peer, m.direction, m.sender,"
    f" {MESSAGE_TEXT},"
    f" m.sent_at, d.name, {MESSAGE_HAS_ATTACHMENT}, r.destroyed_at IS NOT NULL, c.ref"
)


def _hit(row: tuple[object, ...]) -> MessageHit:
    return MessageHit(
        record_row=int(row[0]),  # type: ignore[call-overload]
        conversation_id=int(row[1]),  # type: ignore[call-overload]
        owner=str(row[2]),
        peer=str(row[3]),
        direction=str(row[4]),
        sender=str(row[5]),
        text=None if row[6] is None else str(row[6]),
        sent_at=int(row[7]),  # type: ignore[call-overload]
        device_name=str(row[8]),
        has_attachment=bool(row[9]),
        destroyed=bool(row[10]),
        conversation_ref=str(row[11]),
    )


def search_messages(
    conn: Connection,
    text: str = "",
    filters: SearchFilters | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[MessageHit]:
    """Full-text search with filters, newest first."""
    f = filters or SearchFilters()
    query = _expanded_query(conn, text)
    page: list[object] = [max(1, min(limit, 500)), max(0, offset)]
    if query is None and f.conversation_id is not None:
        return _conversation_messages(conn, f, page)
    if query is None and f.has_attachment and _attached_is_cheaper(conn, page):
        return _attached_messages(conn, f, page)
    where: list[str] = []
    args: list[object] = []
    source = (
        "messages m JOIN records r ON r.id = m.record_id"
        " JOIN conversations c ON c.id = m.conversation_id JOIN devices d ON d.id = r.device_id"
    )
    if query is not None:
        source = "messages_fts JOIN " + source.replace(
            "messages m JOIN", "messages m ON m.record_id = messages_fts.rowid JOIN", 1
        )
        where.append("messages_fts MATCH ?")
        args.append(query)
    # With words, the full-text index drives and a conversation is a filter on its hits.
    clauses, values = _filters(f, "m.sent_at")
    where += clauses
    args += values
    if f.conversation_id is not None:
        where.append("m.conversation_id = ?")
        args.append(f.conversation_id)
    # Only fixed fragments are interpolated; every value is a bound parameter.
    sql = f"SELECT {_HIT_COLUMNS} FROM {source}"  # noqa: S608
    if where:
        sql += " WHERE " + " AND ".join(where)
    # Newest first, in an order an index can stream (LIMIT stops early instead of
    # sorting every match): arrival order for text and archive-wide listings.
    if query is not None:
        sql += " ORDER BY messages_fts.rowid DESC"
    else:
        sql += " ORDER BY m.record_id DESC"
    sql += " LIMIT ? OFFSET ?"
    return [_hit(row) for row in conn.execute(sql, args + page)]


def _filters(f: SearchFilters, sent_at: str) -> tuple[list[str], list[object]]:
    where: list[str] = []
    args: list[object] = []
    for clause, value in (
        ("c.owner = ?", f.owner),
        ("r.device_id = ?", f.device_id),
        ("m.direction = ?", f.direction),
        (f"{sent_at} >= ?", f.since_ms),
        (f"{sent_at} < ?", f.until_ms),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    if f.has_attachment is not None:
        where.append(f"{MESSAGE_HAS_ATTACHMENT} = ?")
        args.append(1 if f.has_attachment else 0)
    return where, args


def _conversation_messages(
    conn: Connection, f: SearchFilters, page: list[object]
) -> list[MessageHit]:
    """One conversation's messages, newest sent first: its keys in both tables of the
    conversation index (conv_keys), merged in (sent_at, record) order, LIMIT early."""
    where, args = _filters(f, "k.sent_at")
    arm = (
        f"SELECT {_HIT_COLUMNS}, k.sent_at AS k_sent, k.record_id AS k_id"  # noqa: S608
        " FROM {keys} k JOIN messages m ON m.record_id = k.record_id"
        " JOIN records r ON r.id = k.record_id JOIN conversations c ON c.id = k.conversation_id"
        " JOIN devices d ON d.id = r.device_id"
        " WHERE " + " AND ".join(["k.conversation_id = ?", *where])
    )
    sql = conv_keys.union(arm) + " ORDER BY k_sent DESC, k_id DESC LIMIT ? OFFSET ?"
    rows = conn.execute(sql, conv_keys.per_arm([f.conversation_id, *args]) + page)
    return [_hit(row) for row in rows]


# "With an attachment" and no words, from the attachments table: the conversations it
# names, each one's keys (conv_keys) and records once, kept where an attachment names
# the record's phone id (the attachments_message seek). There is no index on the
# phone's id, so a conversation is read whole: this reads the keys (and records) of
# the conversations holding an attachment. Scanning messages newest first instead
# reads about (offset + limit) x messages / attachments rows until its page is full:
# every message when none has an attachment. Whichever costs less runs. A key costs
# about KEY_COST scanned rows: its record is on a page of its own (the scan reads
# neighbours), measured 10-13 us per key against 1.6 us per scanned row on a 1M copy.
KEY_COST = 8
_ATTACHED_CONVERSATIONS = "(SELECT DISTINCT conversation_id FROM attachments)"
_ATTACHED_KEYS = (
    "SELECT count(*) FROM (SELECT 1 FROM "  # noqa: S608
    + _ATTACHED_CONVERSATIONS
    + " ac JOIN ("
    + conv_keys.union("SELECT conversation_id FROM {keys}")
    + ") k ON k.conversation_id = ac.conversation_id LIMIT ?)"
)


def _attached_is_cheaper(conn: Connection, page: list[object]) -> bool:
    """Whether reading the attachments' conversations costs less than the scan of
    messages for this page: KEY_COST x their keys <= (offset + limit) x messages /
    attachments. Estimated first (conversations of an average size, from two b-tree
    edges), each count stopped where the answer is known (a box with attachments
    everywhere reads a few hundred index entries, not all of them); then, when the
    estimate says yes, the keys counted, stopped at the scan's cost."""
    wanted: int = int(page[0]) + int(page[1])  # type: ignore[call-overload]
    newest, last_conversation = conn.execute(
        "SELECT (SELECT coalesce(max(record_id), 0) FROM messages),"
        " (SELECT coalesce(max(id), 1) FROM conversations)"
    ).fetchone()
    budget = wanted * int(newest) // KEY_COST  # keys x attachments the scan allows
    size = max(int(newest) // int(last_conversation), 1)
    # Attachments are at least as many as their conversations: past sqrt(budget /
    # size) conversations, keys x attachments is over budget whatever they hold.
    conversations = _counted(conn, _ATTACHED_CONVERSATIONS, isqrt(budget // size) + 1)
    if conversations * conversations * size > budget:
        return False
    attachments = _counted(conn, "attachments", budget // max(conversations * size, 1) + 1)
    keys_at_most = budget // max(attachments, 1)
    if conversations * size > keys_at_most:
        return False
    keys = int(conn.execute(_ATTACHED_KEYS, (keys_at_most + 1,)).fetchone()[0])
    return keys <= keys_at_most


def _counted(conn: Connection, source: str, at_most: int) -> int:
    """Rows of `source` (a fixed text), counted up to `at_most`."""
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {source} LIMIT ?)"  # noqa: S608
    return int(conn.execute(sql, (at_most,)).fetchone()[0])


def _attached_messages(conn: Connection, f: SearchFilters, page: list[object]) -> list[MessageHit]:
    """search_messages' scan with has_attachment=True, driven by the attachments
    table: the same hits in the same order (newest record first)."""
    where, args = _filters(replace(f, has_attachment=None), "m.sent_at")
    # CROSS JOIN keeps this order: the planner would otherwise start from a person's
    # conversations (owner filter) or from every key of conv_recent. The attachment
    # test needs the record only (the phone's id), and as a scalar subquery it runs
    # there (an EXISTS became a join after the message, conversation and device).
    arm = (
        f"SELECT {_HIT_COLUMNS}, k.record_id AS k_id"  # noqa: S608
        f" FROM {_ATTACHED_CONVERSATIONS} ac CROSS JOIN {{keys}} k"
        " CROSS JOIN records r JOIN messages m ON m.record_id = k.record_id"
        " JOIN conversations c ON c.id = k.conversation_id JOIN devices d ON d.id = r.device_id"
        " WHERE "
        + " AND ".join(
            [
                "k.conversation_id = ac.conversation_id AND r.id = k.record_id",
                "(SELECT 1 FROM attachments a WHERE a.conversation_id = k.conversation_id"
                " AND a.message_client_id = r.client_id LIMIT 1) IS NOT NULL",
                *where,
            ]
        )
    )
    sql = conv_keys.union(arm) + " ORDER BY k_id DESC LIMIT ? OFFSET ?"
    return [_hit(row) for row in conn.execute(sql, conv_keys.per_arm(args) + page)]
