"""Box settings kept in the archive's `settings` table (practice name, ...)."""

from __future__ import annotations

from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOpOf

PRACTICE_NAME = "practice_name"
# The backup directory chosen in the web UI when box.toml names none.
BACKUP_TARGET = "backup_target"
MAX_VALUE_CHARS = 200


def get_setting(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_setting_op(key: str, value: str) -> WriteOpOf[None]:
    def op(txn: Txn) -> None:
        txn.conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    return op
