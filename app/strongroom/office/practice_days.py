"""Days typed by a person (YYYY-MM-DD) as instants, in the practice's time zone.

The web export form and `strongroom export --from/--to` read the same typed days
in the same zone: the practice's (register detail `time_zone`, Europe/Paris by
default), never the box's own clock zone, which on an appliance is usually UTC.
So the same dates give the same export range wherever they are typed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


def typed_day_ms(text: str, zone_name: str, *, next_day: bool = False) -> int | None:
    """A filter's typed day in the practice's zone as ms; None when empty or not a date
    (a search filter left out, not refused)."""
    try:
        return day_start_ms(text, zone_name, next_day=next_day) if text.strip() else None
    except ValueError:
        return None


def last_ms_of_day(text: str, zone_name: str) -> int | None:
    """The last millisecond of day `text` in `zone_name`: a hold's range includes both
    ends (holds.py), so "until 25 Oct" must not reach 26 Oct 00:00:00.000. None when
    empty or not a date."""
    next_day = typed_day_ms(text, zone_name, next_day=True)
    return None if next_day is None else next_day - 1


def day_of(ms: int, zone_name: str, *, until: bool = False) -> str:
    """The practice's day (YYYY-MM-DD) holding instant `ms`; `until`: the last day of a
    range whose excluded end is `ms` (a date-range hold's `to_ms`)."""
    moment = datetime.fromtimestamp((ms - 1 if until else ms) / 1000, zone(zone_name))
    return moment.date().isoformat()


def hold_bound(ms: int, zone_name: str, *, until: bool = False) -> str:
    """A date-range hold's bound as the archivist should read it: the practice's day when
    the bound is that day's first millisecond (from) or last millisecond (`until`), else
    the exact date-time in the practice's zone. Holds placed before the practice's zone
    was used were typed in the box's clock zone (UTC on an appliance) and kept the next
    day's 00:00 as their inclusive end: shown as days, "25 Oct" would hide that the hold
    really runs from 02:00 on 25 Oct to 01:00 on 26 Oct in Paris."""
    edge = ms + 1 if until else ms  # a practice midnight when the bound is a whole day's
    midnight = datetime.fromtimestamp(edge // 1000, zone(zone_name))
    if edge % 1000 == 0 and (midnight.hour, midnight.minute, midnight.second) == (0, 0, 0):
        return day_of(ms, zone_name, until=until)
    exact = datetime.fromtimestamp(ms // 1000, zone(zone_name)).strftime("%Y-%m-%d %H:%M:%S")
    return exact + (f".{ms % 1000:03d}" if ms % 1000 else "")


def today_in(zone_name: str, now_s: float) -> date:
    """The practice's date at `now_s` (a sheet's issue date): at 00:30 in Paris the box's
    UTC clock still says yesterday."""
    return datetime.fromtimestamp(now_s, zone(zone_name)).date()


class UnknownTimeZone(ValueError):
    """A time zone given with a request (`time_zone`) that the box does not know."""


def checked_zone(name: str | None) -> str | None:
    """`name` if the box knows it (an IANA name), None if empty; else UnknownTimeZone.

    zone() falls back to Europe/Paris on a name it cannot read: right for the
    practice's stored zone, wrong for one a caller sent, which would silently hold
    or export other days than the ones asked for. The web and the CLI refuse such a
    name; a request on the control socket is refused here the same way."""
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(
            f"unknown time zone {name!r} (write it as Europe/Paris); nothing was done"
        ) from None
    return name


def zone_of(conn: Connection, override: str | None = None) -> str:
    """The zone typed days are read in: `override` (a CLI --time-zone), else the practice's.
    An override the box does not know raises UnknownTimeZone (a ValueError)."""
    return checked_zone(override) or practice_time_zone(conn)
