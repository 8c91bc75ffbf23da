"""Attachments in archive searches: by file name, and those pushed as records of their own.

A phone may push an attachment record that no message refers to (the reference
client does: its `ref` is its own id). Message search never shows it, so the
archive page lists matching attachments beside the messages: by file name
when text is typed, all of them under the "with attachment" filter, always
within the same person, device, conversation and date filters.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.archive.search import SearchFilters


@dataclass(frozen=True)
class FileHit:
    record_row: int
    name: str
    size: int
    mime: str
    sha256_hex: str
    sent_at: int
    owner: str
    peer: str
    conversation_ref: str
    linked: bool  # a message of the conversation names it


# A message of the attachment's conversation names it: that conversation's records
# through both tables of its index (conv_keys).
_MESSAGE_KEPT = conv_keys.exists(
    "SELECT 1 FROM {keys} k JOIN records m ON m.id = k.record_id"
    " JOIN messages mm ON mm.record_id = k.record_id"
    " WHERE k.conversation_id = a.conversation_id AND m.client_id = a.message_client_id"
)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_files(
    conn: Connection, text: str, filters: SearchFilters, *, limit: int = 50
) -> list[FileHit]:
    where = ["r.destroyed_at IS NULL"]
    args: list[object] = []
    if text:
        where.append("a.name LIKE ? ESCAPE '\\'")
        args.append(_like(text))
    for clause, value in (
        ("c.owner = ?", filters.owner),
        ("r.device_id = ?", filters.device_id),
        ("a.conversation_id = ?", filters.conversation_id),
        ("r.sent_at >= ?", filters.since_ms),
        ("r.sent_at < ?", filters.until_ms),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = (
        "SELECT a.record_id, a.name, a.size, a.mime, a.blob_sha256, r.sent_at, c.owner, c.peer,"  # noqa: S608
        f" c.ref, {_MESSAGE_KEPT}"
        " FROM attachments a JOIN records r ON r.id = a.record_id"
        " JOIN conversations c ON c.id = a.conversation_id"
        f" WHERE {' AND '.join(where)} ORDER BY r.id DESC LIMIT ?"
    )
    args.append(max(1, min(limit, 200)))
    return [
        FileHit(
            int(row[0]),
            str(row[1]),
            int(row[2]),
            str(row[3]),
            bytes(row[4]).hex(),
            int(row[5]),
            str(row[6]),
            str(row[7]),
            str(row[8]),
            bool(row[9]),
        )
        for row in conn.execute(sql, args)
    ]
