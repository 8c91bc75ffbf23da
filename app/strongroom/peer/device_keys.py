"""The device keys a history page names (protocol.md §8).

A restored phone verifies every record's Ed25519 signature, as the box did
when the record was pushed; a history item names only the pushing device's
id, so each page lists the key of every device its items name. Kept apart
from the history_page query on purpose: that one is about speed, this one
about what a phone needs to check it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from strongroom.archive.db import Connection


def device_keys(conn: Connection, device_ids: Iterable[int]) -> list[dict[str, Any]]:
    """[{"device": id, "sign_key": Ed25519 public key}] for these devices, by id."""
    wanted = sorted(set(device_ids))
    if not wanted:
        return []
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT id, sign_key FROM devices WHERE id IN ({marks}) ORDER BY id",  # noqa: S608 - only ? marks
        wanted,
    ).fetchall()
    return [{"device": int(row[0]), "sign_key": bytes(row[1])} for row in rows]
