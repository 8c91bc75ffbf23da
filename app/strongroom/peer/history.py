"""Read-side queries of the peer service (on reader connections, never the writer).

Devices by key, mail waiting for a device, history pages of an owner's
records, and the blobs an owner may download.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from strongroom.archive.blobs import BlobLocation
from strongroom.archive.db import Connection
from strongroom.archive.nodes import SharedProofs, SqlNodeStore
from strongroom.archive.store import latest_tree_head
from strongroom.peer.mailbox import PENDING_MAIL_SQL
from strongroom.proof.sth import SignedTreeHead


@dataclass(frozen=True)
class Device:
    id: int
    owner: str
    name: str
    sign_key: bytes
    noise_key: bytes
    revoked: bool


def device_by_noise_key(conn: Connection, noise_key: bytes) -> Device | None:
    row = conn.execute(
        "SELECT id, owner, name, sign_key, noise_key, revoked_at FROM devices WHERE noise_key = ?",
        (noise_key,),
    ).fetchone()
    if row is None:
        return None
    return Device(int(row[0]), row[1], row[2], bytes(row[3]), bytes(row[4]), row[5] is not None)


@dataclass(frozen=True)
class MailItem:
    mail_id: bytes
    sender_owner: str
    sender_device: int
    at: int
    payload: bytes


def pending_mail(conn: Connection, device_id: int, owner: str, limit: int) -> list[MailItem]:
    """Mail this device may take, oldest first."""
    rows = conn.execute(
        PENDING_MAIL_SQL, {"owner": owner, "device": device_id, "limit": limit}
    ).fetchall()
    return [MailItem(bytes(r[0]), r[1], int(r[2]), int(r[3]), bytes(r[4])) for r in rows]


@dataclass(frozen=True)
class Notice:
    mail_id: bytes
    device: int
    at: int


def pending_notices(conn: Connection, device_id: int, limit: int) -> list[Notice]:
    """Delivery notices for mail this device sent and the recipient took."""
    rows = conn.execute(
        "SELECT mail_id, recipient_device, acked_at FROM mail"
        " WHERE sender_device = ? AND acked_at IS NOT NULL ORDER BY id LIMIT ?",
        (device_id, limit),
    ).fetchall()
    return [Notice(bytes(r[0]), int(r[1]), int(r[2])) for r in rows]


@dataclass(frozen=True)
class HistoryPage:
    items: list[dict[str, Any]]
    cursor: int
    done: bool
    tree_head: dict[str, Any] | None = None  # what every item's proof leads to


# One arm per device of the owner: `records_device (device_id, id)` hands each
# device's records in id order, and SQLite merges the arms (MERGE (UNION ALL))
# and stops at the LIMIT. A page then costs the same at any archive size.
# The old single query (devices JOIN records ORDER BY id) collected every
# remaining record of the owner and sorted them for each page: a restore was
# quadratic (about 4 hours for 1M records).
_ARM = (
    "SELECT r.id, r.body, r.signature, r.log_index, r.device_id, l.at FROM records r"
    " JOIN log_leaves l ON l.idx = r.log_index"
    " WHERE r.device_id = ? AND r.id > ? AND r.body IS NOT NULL"
)
# Well under SQLITE_MAX_COMPOUND_SELECT (500); more devices are merged here in chunks.
_ARMS_PER_QUERY = 64

Row = tuple[int, bytes, bytes, int, int, int]


def history_sql(arms: int) -> str:
    """The page query for an owner with `arms` devices (exposed for the plan test)."""
    # Only the fixed fragment is repeated; every value is a bound parameter.
    return " UNION ALL ".join([_ARM] * arms) + " ORDER BY 1 LIMIT ?"


def owner_devices(conn: Connection, owner: str) -> list[int]:
    rows = conn.execute("SELECT id FROM devices WHERE owner = ? ORDER BY id", (owner,))
    return [int(r[0]) for r in rows]


def _merged_rows(conn: Connection, devices: list[int], cursor: int, count: int) -> list[Row]:
    """The first `count` live records of these devices after `cursor`, in id order."""
    chunks = [devices[i : i + _ARMS_PER_QUERY] for i in range(0, len(devices), _ARMS_PER_QUERY)]
    per_chunk: list[list[Row]] = []
    for chunk in chunks:
        args: list[int] = []
        for device in chunk:
            args += [device, cursor]
        per_chunk.append(conn.execute(history_sql(len(chunk)), [*args, count]).fetchall())
    if len(per_chunk) == 1:
        return per_chunk[0]
    return list(itertools.islice(heapq.merge(*per_chunk, key=lambda r: r[0]), count))


def history_page(
    conn: Connection, owner: str, cursor: int, limit: int, max_bytes: int
) -> HistoryPage:
    """Records of every device of `owner` after `cursor`, in archive order.

    Each item carries its log leaf's time and an inclusion proof against the
    page's signed tree head, so a restored phone checks that every record is
    in the box's log, not only that its device signed it. The page holds at
    most `limit` records and stops before `max_bytes` (records, signatures and
    proofs; always at least one record). Destroyed records are skipped.
    """
    # One read transaction: the tree head and the rows come from the same snapshot,
    # so every record listed is inside the head it is proven against.
    conn.execute("BEGIN")
    try:
        head = latest_tree_head(conn)
        devices = owner_devices(conn, owner)
        rows = _merged_rows(conn, devices, cursor, limit + 1) if devices else []
        proofs = SharedProofs(SqlNodeStore(conn), head.tree_size) if head is not None else None
        items: list[dict[str, Any]] = []
        size = 0
        for row_id, body, sig, log_index, device, at in rows[:limit]:
            item: dict[str, Any] = {
                "record": bytes(body),
                "sig": bytes(sig),
                "log_index": int(log_index),
                "device": device,
                "at": int(at),
            }
            if proofs is not None:
                item["proof"] = proofs.proof(int(log_index))
            # Bytes plus CBOR: keys, heads and integers take < 128 per item, 2 per hash.
            size += len(body) + len(sig) + 34 * len(item.get("proof", ())) + 128
            if items and size > max_bytes:
                return HistoryPage(items, cursor, False, _head_dict(head))
            items.append(item)
            cursor = int(row_id)
        return HistoryPage(items, cursor, len(rows) <= limit, _head_dict(head))
    finally:
        conn.execute("COMMIT")


def _head_dict(head: SignedTreeHead | None) -> dict[str, Any] | None:
    return None if head is None else head.to_dict()


@dataclass(frozen=True)
class StoredBlob:
    size: int
    location: BlobLocation
    log_index: int


def stored_blob(conn: Connection, sha256: bytes) -> StoredBlob | None:
    row = conn.execute(
        "SELECT size, file_name, key_salt, log_index FROM blobs"
        " WHERE sha256 = ? AND destroyed_at IS NULL",
        (sha256,),
    ).fetchone()
    if row is None:
        return None
    return StoredBlob(int(row[0]), BlobLocation(row[1], bytes(row[2])), int(row[3]))


def owner_has_blob(conn: Connection, owner: str, sha256: bytes) -> bool:
    """Whether an attachment record of one of `owner`'s devices names this blob."""
    row = conn.execute(
        "SELECT 1 FROM attachments a JOIN records r ON r.id = a.record_id"
        " JOIN devices d ON d.id = r.device_id WHERE a.blob_sha256 = ? AND d.owner = ? LIMIT 1",
        (sha256, owner),
    ).fetchone()
    return row is not None
