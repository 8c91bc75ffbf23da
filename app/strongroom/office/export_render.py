"""What a reader of an export sees: titles by name, who wrote to whom, on which
phone, at what time (the practice's time zone and UTC), and the gaps left by
destroyed records. The HTML and the PDF are both made from these values, so
they say the same thing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from strongroom.archive.db import Connection
from strongroom.office.bundle_pdf import RenderedRecord
from strongroom.office.export_scope import ExportRequest
from strongroom.office.register_facts import TIME_ZONE
from strongroom.proof.sth import SignedTreeHead

DEFAULT_TIME_ZONE = "Europe/Paris"

_DIRECTION = {
    "out": "envoyé / sent",
    "in": "reçu / received",
}


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


def local_and_utc(ms: int, tz: ZoneInfo) -> str:
    """`13/09/2020 14:26:40 (Europe/Paris) = 2020-09-13 12:26:40 UTC`.

    The same text as formatting `datetime`s with strftime, which an export does four
    times a record (12 % of its time): the zone is asked once an hour, a day's
    date written once (tests/test_export_streaming.py compares the two)."""
    seconds = ms // 1000
    minute, second = divmod(seconds, 60)
    parts = _minute_text(minute, tz)
    if parts is not None:  # the usual case: the rest of the minute's text is known
        two = _TWO_DIGITS[second]  # not formatted each time: 4 a record
        return f"{parts[0]}{two}{parts[1]}{two} UTC"
    local = seconds + _offset(seconds, tz)
    return (
        f"{_day(local // _DAY, True)} {_clock(local)} ({tz.key}) = "
        f"{_day(seconds // _DAY, False)} {_clock(seconds)} UTC"
    )


@functools.lru_cache(maxsize=4096)
def _minute_text(minute: int, tz: ZoneInfo) -> tuple[str, str] | None:
    """A minute's text but its seconds ("13/09/2020 14:26:", " (Europe/Paris) =
    2020-09-13 12:26:"): records come seconds apart, so most share it. None when the
    offset changes within the hour or is not whole minutes (old local mean times)."""
    seconds = minute * 60
    offset = _hour_offset(seconds // _HOUR, tz)
    if offset is None or offset % 60:
        return None
    local = seconds + offset
    return (
        f"{_day(local // _DAY, True)} {_clock(local)[:6]}",
        f" ({tz.key}) = {_day(seconds // _DAY, False)} {_clock(seconds)[:6]}",
    )


_DAY, _HOUR = 86_400, 3_600
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _clock(seconds: int) -> str:
    minutes, second = divmod(seconds % _DAY, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}"


@functools.lru_cache(maxsize=1024)
def _day(day: int, french: bool) -> str:
    date = (_EPOCH + timedelta(days=day)).date()
    return date.strftime("%d/%m/%Y") if french else date.strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=4096)
def _hour_offset(hour: int, tz: ZoneInfo) -> int | None:
    """The zone's UTC offset in seconds through this hour, None if it changes within."""
    start = _EPOCH + timedelta(seconds=hour * _HOUR)
    first = start.astimezone(tz).utcoffset()
    last = (start + timedelta(seconds=_HOUR - 1)).astimezone(tz).utcoffset()
    return int(first.total_seconds()) if first is not None and first == last else None


def _offset(seconds: int, tz: ZoneInfo) -> int:
    offset = _hour_offset(seconds // _HOUR, tz)
    if offset is None:  # the hour of a change: asked for this second
        found = (_EPOCH + timedelta(seconds=seconds)).astimezone(tz).utcoffset()
        offset = int(found.total_seconds()) if found is not None else 0
    return offset


@dataclass(frozen=True)
class BundleText:
    """The export's title and facts, and how its records are told."""

    request: ExportRequest
    head: SignedTreeHead
    at_ms: int
    time_zone: str
    # a conversation's owner and other party, or a matter's reference and client
    names: tuple[str, ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.time_zone)

    @property
    def title(self) -> str:
        scope = self.request.scope
        if scope.kind == "conversation" and self.names:
            subject = "Conversation " + " ↔ ".join(n for n in self.names if n)
        elif scope.kind == "matter" and self.names:
            ref, client = self.names
            subject = f"Dossier / matter {ref}" + (f" — {client}" if client else "")
        elif scope.kind == "person":
            subject = f"Dossier de / file of {scope.person}"
        elif scope.kind == "records":
            subject = f"{len(scope.record_ids)} enregistrements / records"
        else:
            subject = "Conversation"
        return f"Export Strongroom — {subject}"

    def meta(self) -> list[tuple[str, str]]:
        scope = self.request.scope
        rows = [
            ("Exporté par / exported by", self.request.actor),
            ("Pour / for", self.request.recipient),
            ("Motif / reason", self.request.reason),
            ("Date", local_and_utc(self.at_ms, self.tz)),
        ]
        if scope.from_ms is not None or scope.to_ms is not None:
            start = local_and_utc(scope.from_ms, self.tz) if scope.from_ms is not None else "—"
            end = local_and_utc(scope.to_ms, self.tz) if scope.to_ms is not None else "—"
            rows.append(("Période / period", f"{start} → {end}"))
        rows.append(
            (
                "Journal / log",
                f"{self.head.tree_size} entrées / entries, racine / root "
                f"{self.head.root_hash.hex()}, {local_and_utc(self.head.timestamp_ms, self.tz)}",
            )
        )
        return rows

    def gap(self, row: Any) -> RenderedRecord:
        """A destroyed record: where it was, and that its destruction is certified."""
        return RenderedRecord(
            log_index=int(row[5]),
            kind=str(row[2]),
            sent_at=int(row[7]),
            sender="",
            direction="",
            text="",
            conversation=_conversation(row),
            detail=(
                "Enregistrement détruit (conservation) : voir son certificat de destruction,"
                f" entrée {int(row[5])} du journal / record destroyed under retention: see its"
                f" destruction certificate, log entry {int(row[5])}"
            ),
            gap=True,
            phone_time=local_and_utc(int(row[7]), self.tz),
        )


def _conversation(row: Any) -> str:
    owner, peer, ref = str(row[15]), str(row[14]), str(row[13])
    return f"{owner} ↔ {peer or ref}"


def rendered_record(
    row: Any, fields: dict[str, Any], attachment_file: str | None, text: BundleText
) -> RenderedRecord:
    kind = str(row[2])
    detail = ""
    if kind == "attachment":
        blob = fields.get("blob", {})
        detail = f"Pièce jointe / attachment : {blob.get('name', '')} ({blob.get('size', 0)} o)"
        if attachment_file is None:
            detail += " — fichier absent / file not in this export"
    elif kind == "receipt":
        detail = f"{fields.get('receipt', '')} → {fields.get('ref', '')}"
    elif kind in ("edit", "deletion"):
        detail = f"→ {fields.get('ref', '')}"
    owner, peer = str(row[15]), str(row[14]) or str(row[13])
    direction = str(fields.get("dir", ""))
    sender = str(fields.get("from", "")) or (owner if direction == "out" else peer)
    recipient = peer if direction == "out" else owner
    return RenderedRecord(
        log_index=int(row[5]),
        kind=kind,
        sent_at=int(row[7]),
        sender=sender,
        direction=direction,
        text=str(fields.get("text", "") or ""),
        conversation=_conversation(row),
        detail=detail,
        recipient=recipient,
        direction_label=_DIRECTION.get(direction, direction),
        device=f"{row[10]} ({row[11]})",
        phone_time=local_and_utc(int(row[7]), text.tz),
        box_time=local_and_utc(int(row[6]), text.tz),
        attachment=attachment_file,
    )


def practice_time_zone(conn: Connection) -> str:
    """The practice's zone (settings table, key time_zone), Europe/Paris by default."""
    try:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (TIME_ZONE,)).fetchone()
    except Exception:  # an archive without the settings table: the default
        return DEFAULT_TIME_ZONE
    return str(row[0]) if row is not None and row[0] else DEFAULT_TIME_ZONE


def record_document(
    row: Any, fields: dict[str, Any], attachment_file: str | None
) -> dict[str, Any]:
    return {
        "log_index": int(row[5]),
        "record_id": bytes(row[1]).hex(),
        "kind": str(row[2]),
        "received_at": int(row[6]),
        "signature": bytes(row[4]).hex(),
        "device": {
            "id": int(row[9]),
            "name": str(row[10]),
            "owner": str(row[11]),
            "sign_key": bytes(row[12]).hex(),
            "pem": f"devices/D{int(row[9])}.pem",
        },
        "conversation": {"ref": str(row[13]), "peer": str(row[14]), "owner": str(row[15])},
        "fields": plain(fields),
        "attachment_file": attachment_file,
    }


def plain(value: Any) -> Any:
    """CBOR values as JSON: bytes become lowercase hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
