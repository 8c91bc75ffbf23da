"""Reading form and query values defensively (anything missing or odd is empty)."""

from __future__ import annotations

from typing import Any

from strongroom.office.practice_days import typed_day_ms

MAX_FIELD_CHARS = 10_000


def text_field(form: Any, name: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


def int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def day_ms(text: str, zone_name: str, *, next_day: bool = False) -> int | None:
    """A YYYY-MM-DD date read in the practice's zone `zone_name` (never the box's own
    clock zone, usually UTC on an appliance) as ms; the day after for an 'until' bound.
    None when empty or not a date. See office/practice_days.py."""
    return typed_day_ms(text, zone_name, next_day=next_day)
