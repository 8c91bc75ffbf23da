"""What the box knows of each phone's reach: the public key tor holds for it, and the
onion address the box last gave it.

One row of the archive's `settings` table per phone (`reach_phone:<device id>`,
JSON `{"key", "onion"}`), written through the group committer: inside the
encrypted backups like the onion key (`archived_key`), so a restored box can
put the phones' keys back into tor. The private halves are never kept: only
the phone holds its own. This is what the /reach page and `reach status` count:
a phone whose row names the current onion holds it; the others must connect
once on the LAN (or be told `reach_changed` while connected) to learn it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from strongroom.archive.db import Connection
from strongroom.archive.store import Txn
from strongroom.office.restore import RESTORED_FROM

PREFIX = "reach_phone:"


@dataclass(frozen=True)
class PhoneReach:
    key: str  # x25519 public, base32: what tor's device-<id>.auth holds
    onion: str  # the address the box last gave this phone


def _parse(value: str | None) -> PhoneReach | None:
    if value is None:
        return None
    try:
        raw = json.loads(value)
        return PhoneReach(str(raw["key"]), str(raw["onion"]))
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: as if the phone had never been given reach


class PhoneKeys:
    """Reads through the box's reader pool, writes through its group committer."""

    def __init__(self, box: Any) -> None:
        self.box = box

    async def load(self, device_id: int) -> PhoneReach | None:
        if self.box.readers is None:
            return None

        def query(conn: Connection) -> str | None:
            key = f"{PREFIX}{int(device_id)}"
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return _parse(await self.box.readers.run(query))

    async def store(self, device_id: int, reach: PhoneReach) -> None:
        if self.box.committer is None:
            return
        value = json.dumps({"key": reach.key, "onion": reach.onion}, sort_keys=True)

        def op(txn: Txn) -> None:
            txn.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (f"{PREFIX}{int(device_id)}", value),
            )

        await self.box.committer.submit(op)

    async def forget(self, device_id: int) -> None:
        if self.box.committer is None:
            return

        def op(txn: Txn) -> None:
            txn.conn.execute("DELETE FROM settings WHERE key = ?", (f"{PREFIX}{int(device_id)}",))

        await self.box.committer.submit(op)

    async def active(self) -> dict[int, PhoneReach | None]:
        """Every paired, non-revoked phone and what it was given (None: nothing yet)."""
        if self.box.readers is None:
            return {}

        def query(conn: Connection) -> list[tuple[int, str | None]]:
            rows = conn.execute(
                "SELECT d.id, s.value FROM devices d LEFT JOIN settings s"
                " ON s.key = ? || d.id WHERE d.revoked_at IS NULL ORDER BY d.id",
                (PREFIX,),
            ).fetchall()
            return [(int(r[0]), None if r[1] is None else str(r[1])) for r in rows]

        rows: list[tuple[int, str | None]] = await self.box.readers.run(query)
        return {device: _parse(value) for device, value in rows}

    def readable(self) -> bool:
        return self.box.readers is not None

    async def restored(self) -> bool:
        """Whether the restore notice is up (office.restore RESTORED_FROM): the archive
        came from a backup, whose devices table predates later revocations."""
        if self.box.readers is None:
            return False

        def query(conn: Connection) -> bool:
            row = conn.execute("SELECT 1 FROM settings WHERE key = ?", (RESTORED_FROM,))
            return row.fetchone() is not None

        return bool(await self.box.readers.run(query))
