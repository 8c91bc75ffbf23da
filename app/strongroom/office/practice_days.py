"""Days typed by a person (YYYY-MM-DD) as instants, in the practice's time zone.

The web export form and `strongroom export --from/--to` read the same typed days
in the same zone: the practice's (register detail `time_zone`, Europe/Paris by
default), never the box's own clock zone, which on an appliance is usually UTC.
So the same dates give the same export range wherever they are typed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from strongroom.archive.db import Connection
from strongroom.office.export_render import practice_time_zone, zone


def day_start_ms(text: str, zone_name: str, *, next_day: bool = False) -> int:
    """The start of day `text` in `zone_name` as ms (of the day after for an 'until' bound,
    which is excluded). Raise ValueError if `text` is not a YYYY-MM-DD date."""
    day = date.fromisoformat(text.strip()) + timedelta(days=1 if next_day else 0)
    return int(datetime(day.year, day.month, day.day, tzinfo=zone(zone_name)).timestamp() * 1000)


def day_range_ms(
    since: str | None, until: str | None, zone_name: str
) -> tuple[int | None, int | None]:
    """(from_ms, to_ms) for an inclusive range of typed days; empty text: no bound."""
    return (
        day_start_ms(since, zone_name) if since else None,
        day_start_ms(until, zone_name, next_day=True) if until else None,
    )


def zone_of(conn: Connection, override: str | None = None) -> str:
    """The zone typed days are read in: `override` (a CLI --time-zone), else the practice's."""
    return override or practice_time_zone(conn)
