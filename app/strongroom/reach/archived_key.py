"""The onion service's secret key, kept inside the archive so the encrypted backup has it.

The box's backups already carry the archive (SQLCipher, encrypted under keys
derived from the 24 words): a row of its `settings` table is covered without a
change to the backup code. A box restored from such a backup turns reach on with
the same key, so it keeps its onion address and the phones' keys keep working.
While the box is locked there is no archive: nothing is read or kept.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from strongroom.archive.db import Connection
from strongroom.archive.store import Txn

SETTING = "reach_onion_key"
# tor's hs_ed25519_secret_key file: a 32-byte header and the 64-byte expanded key.
KEY_FILE_BYTES = 96


def check_key_file(data: bytes) -> bytes:
    if len(data) != KEY_FILE_BYTES or not data.startswith(b"== ed25519v1-secret: type0 =="):
        raise ValueError("not a tor v3 onion-service secret key file")
    return data


def encode_key(data: bytes) -> str:
    return base64.b64encode(check_key_file(data)).decode("ascii")


def decode_key(text: str) -> bytes:
    try:
        return check_key_file(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"unusable onion key: {exc}") from None


class ArchivedKey:
    """Reads and writes the key through the box's reader pool and group committer."""

    def __init__(self, box: Any) -> None:
        self.box = box

    async def load(self) -> str | None:
        if self.box.readers is None:
            return None

        def query(conn: Connection) -> str | None:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (SETTING,)).fetchone()
            return None if row is None else str(row[0])

        result: str | None = await self.box.readers.run(query)
        return result

    async def store(self, value: str) -> None:
        if self.box.committer is None:
            return

        def op(txn: Txn) -> None:
            txn.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (SETTING, value),
            )

        await self.box.committer.submit(op)
