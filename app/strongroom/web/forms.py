"""Reading form and query values defensively (anything missing or odd is empty)."""

from __future__ import annotations

import datetime as dt
from typing import Any

MAX_FIELD_CHARS = 10_000


def text_field(form: Any, name: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def day_ms(text: str, *, next_day: bool = False) -> int | None:
    """A YYYY-MM-DD date (the box's local time) as ms; the day after for an 'until' bound."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    if next_day:
        day += dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time()).astimezone()
    return int(start.timestamp() * 1000)
