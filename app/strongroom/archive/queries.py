"""Read-side queries for the web UI, the CLI and exports (never write here)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.archive.fts_terms import completions
from strongroom.archive.schema import LIGATURES, MESSAGE_TEXT

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
    " m.sent_at, d.name, m.has_attachment, r.destroyed_at IS NOT NULL, c.ref"
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
        where.append("m.has_attachment = ?")
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


@dataclass(frozen=True)
class ConversationRow:
    id: int
    owner: str
    ref: str
    peer: str
    created_at: int
    last_at: int
    messages: int | None  # None: not counted (`counted=False`)


def list_conversations(
    conn: Connection, owner: str | None = None, *, counted: bool = True
) -> list[ConversationRow]:
    """The conversations, newest first. `counted=False` leaves the message counts out:
    they read every record of the archive, and a picker (the records office's
    forms) needs only the names."""
    # Both tables of the conversation index (conv_keys), one index range each.
    count = (
        conv_keys.summed(
            "SELECT count(*) FROM {keys} k JOIN messages m ON m.record_id = k.record_id"
            " WHERE k.conversation_id = c.id"
        )
        if counted
        else "NULL"
    )
    sql = (
        "SELECT c.id, c.owner, c.ref, c.peer, c.created_at, c.last_at, "  # noqa: S608
        + count
        + " FROM conversations c"
    )
    args: list[object] = []
    if owner is not None:
        sql += " WHERE c.owner = ?"
        args.append(owner)
    sql += " ORDER BY c.last_at DESC"
    return [
        ConversationRow(
            int(a), str(b), str(c), str(d), int(e), int(f), None if g is None else int(g)
        )
        for a, b, c, d, e, f, g in conn.execute(sql, args)
    ]


@dataclass(frozen=True)
class DeviceRow:
    id: int
    name: str
    owner: str
    role: str
    paired_at: int
    pairing_method: str
    last_seen: int | None
    revoked_at: int | None
    records: int
    fingerprint: str


def list_devices(conn: Connection) -> list[DeviceRow]:
    rows = conn.execute(
        "SELECT d.id, d.name, d.owner, d.role, d.paired_at, d.pairing_method, d.last_seen,"
        " d.revoked_at, (SELECT count(*) FROM records r WHERE r.device_id = d.id), d.sign_key"
        " FROM devices d ORDER BY d.revoked_at IS NOT NULL, d.owner, d.name"
    )
    return [
        DeviceRow(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            int(r[4]),
            str(r[5]),
            None if r[6] is None else int(r[6]),
            None if r[7] is None else int(r[7]),
            int(r[8]),
            bytes(r[9])[:8].hex(),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class RecordView:
    row_id: int
    record_id: bytes
    kind: str
    log_index: int
    received_at: int
    sent_at: int
    body: bytes | None
    signature: bytes | None
    device_name: str
    device_sign_key: bytes
    owner: str
    peer: str
    conversation_id: int
    client_id: str
    destroyed_at: int | None
    leaf_data: bytes


def get_record(conn: Connection, row_id: int) -> RecordView | None:
    row = conn.execute(
        "SELECT r.id, r.record_id, r.kind, r.log_index, r.received_at, r.sent_at, r.body,"
        " r.signature, d.name, d.sign_key, c.owner, c.peer, r.conversation_id, r.client_id,"
        " r.destroyed_at, l.leaf_data FROM records r JOIN devices d ON d.id = r.device_id"
        " JOIN conversations c ON c.id = r.conversation_id"
        " JOIN log_leaves l ON l.idx = r.log_index WHERE r.id = ?",
        (row_id,),
    ).fetchone()
    if row is None:
        return None
    return RecordView(
        int(row[0]),
        bytes(row[1]),
        str(row[2]),
        int(row[3]),
        int(row[4]),
        int(row[5]),
        None if row[6] is None else bytes(row[6]),
        None if row[7] is None else bytes(row[7]),
        str(row[8]),
        bytes(row[9]),
        str(row[10]),
        str(row[11]),
        int(row[12]),
        str(row[13]),
        None if row[14] is None else int(row[14]),
        bytes(row[15]),
    )


@dataclass(frozen=True)
class ReceiptRow:
    receipt: str
    at: int
    device_name: str
    log_index: int


def receipts_for(conn: Connection, conversation_id: int, client_id: str) -> list[ReceiptRow]:
    return [
        ReceiptRow(str(a), int(b), str(c), int(d))
        for a, b, c, d in conn.execute(
            "SELECT x.receipt, x.at, d.name, r.log_index FROM receipts x"
            " JOIN records r ON r.id = x.record_id JOIN devices d ON d.id = r.device_id"
            " WHERE x.conversation_id = ? AND x.target_client_id = ? ORDER BY x.at",
            (conversation_id, client_id),
        )
    ]


@dataclass(frozen=True)
class AttachmentRow:
    record_row: int
    blob_sha256: bytes
    size: int
    name: str
    mime: str
    stored: bool


def attachments_for(conn: Connection, conversation_id: int, client_id: str) -> list[AttachmentRow]:
    return [
        AttachmentRow(int(a), bytes(b), int(c), str(d), str(e), bool(f))
        for a, b, c, d, e, f in conn.execute(
            "SELECT a.record_id, a.blob_sha256, a.size, a.name, a.mime,"
            " EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = a.blob_sha256"
            " AND b.destroyed_at IS NULL) FROM attachments a"
            " WHERE a.conversation_id = ? AND a.message_client_id = ?",
            (conversation_id, client_id),
        )
    ]


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: int
    actor: str
    action: str
    target: str
    details: str
    log_index: int


def audit_events(
    conn: Connection,
    *,
    action: str | None = None,
    actor: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int = 200,
) -> list[AuditRow]:
    where: list[str] = []
    args: list[object] = []
    for clause, value in (
        ("action = ?", action),
        ("actor = ?", actor),
        ("at >= ?", since_ms),
        ("at < ?", until_ms),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = "SELECT id, at, actor, action, target, details, log_index FROM audit_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(max(1, min(limit, 1000)))
    return [
        AuditRow(int(a), int(b), str(c), str(d), str(e), str(f), int(g))
        for a, b, c, d, e, f, g in conn.execute(sql, args)
    ]


def last_audit_event(conn: Connection, actions: Sequence[str]) -> AuditRow | None:
    """The most recent audit event whose action is one of `actions` (last backup, last check)."""
    marks = ",".join("?" * len(actions))  # only placeholders go into the SQL text
    columns = "id, at, actor, action, target, details, log_index"
    sql = f"SELECT {columns} FROM audit_events WHERE action IN ({marks}) ORDER BY id DESC LIMIT 1"  # noqa: S608
    row = conn.execute(sql, tuple(actions)).fetchone()
    if row is None:
        return None
    a, b, c, d, e, f, g = row
    return AuditRow(int(a), int(b), str(c), str(d), str(e), str(f), int(g))


# What the dashboard counts here: the rest costs it nothing (the record count alone
# reads a 5M-entry index, 0.7 s at 5M records); its messages come from a running
# count (message_count.py).
DASHBOARD_COUNTS = ("devices", "log_size")


def counts(conn: Connection, names: tuple[str, ...] | None = None) -> dict[str, int]:
    """Headline numbers for the dashboard (`names`: only those)."""
    out: dict[str, int] = {}
    for name, sql in (
        ("records", "SELECT count(*) FROM records"),
        ("messages", "SELECT count(*) FROM messages"),
        ("devices", "SELECT count(*) FROM devices WHERE revoked_at IS NULL"),
        # Leaves are numbered from 0 without a gap (verify says so when one is
        # missing): the last index says the size without counting 5M rows (0.7 s at 1M).
        ("log_size", "SELECT coalesce(max(idx) + 1, 0) FROM log_leaves"),
        ("blobs", "SELECT count(*) FROM blobs WHERE destroyed_at IS NULL"),
        ("pending_mail", "SELECT count(*) FROM mail WHERE acked_at IS NULL"),
    ):
        if names is not None and name not in names:
            continue
        out[name] = int(conn.execute(sql).fetchone()[0])
    return out
