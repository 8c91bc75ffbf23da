"""Instants as ISO 8601 text in UTC, beside the epoch numbers JSON answers keep.

`strongroom status --json` gave only epoch times (`at`: seconds, `since_ms`:
milliseconds); scripts may read those, so they stay, and each gets a `..._utc`
twin a person (or a log line) can read: `2026-12-06T03:10:00Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(ms: float) -> str:
    """An instant in milliseconds since the epoch, to the second, in UTC."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
