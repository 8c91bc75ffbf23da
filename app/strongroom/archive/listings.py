"""What the archive holds, listed for the web UI and the CLI: conversations, devices,
a record with its receipts and attachments (read only)."""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection


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
