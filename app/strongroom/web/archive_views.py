"""The archive: conversations by person and device, search, record view, attachments.

Every search and every record view is an audit event. Attachments are found
by their SHA-256 only (never by a path a client sends) and streamed decrypted
chunk by chunk, never whole in memory.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cbor2
from aiohttp import web

from strongroom.archive.blobs import BlobLocation
from strongroom.archive.db import Connection
from strongroom.archive.errors import BlobError
from strongroom.archive.listings import (
    ConversationRow,
    DeviceRow,
    attachments_for,
    get_record,
    list_conversations,
    list_devices,
    receipts_for,
)
from strongroom.archive.search import MessageHit, SearchFilters, search_messages
from strongroom.office.practice_days import zone_of
from strongroom.web.attachment_search import FileHit, search_files
from strongroom.web.auth import ADMIN, ARCHIVIST, require_role
from strongroom.web.forms import day_ms, int_or_none
from strongroom.web.practice_zone import practice_zone
from strongroom.web.proofview import check_record_proof
from strongroom.web.render import render
from strongroom.web.state import audit, read, state_of

if TYPE_CHECKING:
    from strongroom.office.resolve import RecordRetention

routes = web.RouteTableDef()
PAGE_SIZE = 50
MAX_QUERY_CHARS = 200
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class SearchForm:
    text: str
    owner: str
    device: str
    direction: str
    since: str
    until: str
    attachment: str
    conversation: str
    page: int

    @property
    def active(self) -> bool:
        return any(
            (self.text, self.owner, self.device, self.direction, self.since, self.until)
        ) or bool(self.attachment or self.conversation)

    def filters(self, zone_name: str) -> SearchFilters:
        """The filters, typed days read in the practice's zone `zone_name`."""
        return SearchFilters(
            owner=self.owner or None,
            device_id=int_or_none(self.device),
            conversation_id=int_or_none(self.conversation),
            direction=self.direction if self.direction in ("in", "out") else None,
            since_ms=day_ms(self.since, zone_name),
            until_ms=day_ms(self.until, zone_name, next_day=True),
            has_attachment={"yes": True, "no": False}.get(self.attachment),
        )

    def as_details(self) -> dict[str, str]:
        fields = {
            "text": self.text,
            "owner": self.owner,
            "device": self.device,
            "direction": self.direction,
            "since": self.since,
            "until": self.until,
            "attachment": self.attachment,
            "conversation": self.conversation,
        }
        return {k: v for k, v in fields.items() if v}

    def page_query(self, page: int) -> str:
        return urllib.parse.urlencode({**self.as_details(), "page": str(page)})


def parse_search(query: Any) -> SearchForm:
    def get(name: str) -> str:
        value = query.get(name, "")
        return value.strip()[:MAX_QUERY_CHARS] if isinstance(value, str) else ""

    page = int_or_none(get("page")) or 1
    return SearchForm(
        text=get("q"),
        owner=get("owner"),
        device=get("device"),
        direction=get("direction"),
        since=get("since"),
        until=get("until"),
        attachment=get("attachment"),
        conversation=get("conversation"),
        page=max(1, min(page, 1000)),
    )


@dataclass(frozen=True)
class ArchiveIndex:
    conversations: list[ConversationRow]
    devices: list[DeviceRow]
    hits: list[MessageHit] | None
    more: bool
    files: list[FileHit] | None = None


def _archive_index(conn: Connection, form: SearchForm) -> ArchiveIndex:
    conversations = list_conversations(conn)
    devices = list_devices(conn)
    if not form.active:
        return ArchiveIndex(conversations, devices, None, False)
    filters = form.filters(zone_of(conn))
    hits = search_messages(
        conn,
        form.text,
        filters,
        limit=PAGE_SIZE + 1,
        offset=(form.page - 1) * PAGE_SIZE,
    )
    files = None
    # A conversation's view, a file name typed, or "with attachment": show its files too.
    if (
        form.attachment != "no"
        and not form.direction
        and (form.text or form.attachment or form.conversation)
    ):
        files = search_files(conn, form.text, filters)
    return ArchiveIndex(conversations, devices, hits[:PAGE_SIZE], len(hits) > PAGE_SIZE, files)


def by_owner(conversations: list[ConversationRow]) -> list[tuple[str, list[ConversationRow]]]:
    groups: dict[str, list[ConversationRow]] = {}
    for conversation in conversations:
        groups.setdefault(conversation.owner, []).append(conversation)
    return sorted(groups.items())


@routes.get("/archive")
@require_role(ADMIN, ARCHIVIST)
async def archive_page(request: web.Request) -> web.StreamResponse:
    form = parse_search(request.query)
    index = await read(request, lambda conn: _archive_index(conn, form))
    if form.active:
        await audit(request, "archive.search", form.text, form.as_details())
    integrity = state_of(request).box.integrity
    context = {
        "form": form,
        # Results show messages.text, not the signed body: after a failed check, say so.
        "integrity_failed": integrity is not None and not integrity.ok,
        "people": by_owner(index.conversations),
        "conversations": index.conversations,
        "devices": index.devices,
        "hits": index.hits,
        "more": index.more,
        "files": index.files,
    }
    await practice_zone(request)  # the page shows times in it
    return render(request, "archive.html", context)


def _decode_body(body: bytes | None) -> dict[str, Any]:
    if body is None:
        return {}
    try:
        fields = cbor2.loads(body)
    except Exception:  # a stored record is validated on the way in; be safe anyway
        return {}
    return fields if isinstance(fields, dict) else {}


def _retention_of(conn: Connection, conversation_id: int, sent_at: int) -> RecordRetention | None:
    """Which policy governs this record and why (None on a box without the office tables)."""
    from strongroom.office.resolve import explain_record

    try:
        return explain_record(conn, conversation_id, sent_at)
    except Exception:  # an archive from before the records office: say nothing
        return None


@routes.get("/archive/records/{row_id:[0-9]{1,18}}")
@require_role(ADMIN, ARCHIVIST)
async def record_page(request: web.Request) -> web.StreamResponse:
    row_id = int(request.match_info["row_id"])
    archive = state_of(request).box.require_archive()

    def load(conn: Connection) -> dict[str, Any] | None:
        record = get_record(conn, row_id)
        if record is None:
            return None
        return {
            "record": record,
            "fields": _decode_body(record.body),
            "attachments": attachments_for(conn, record.conversation_id, record.client_id),
            "receipts": receipts_for(conn, record.conversation_id, record.client_id),
            "proof": check_record_proof(conn, archive, record),
            "retention": _retention_of(conn, record.conversation_id, record.sent_at),
        }

    context = await read(request, load)
    if context is None:
        raise web.HTTPNotFound()
    await audit(request, "archive.view", str(row_id), {"log_index": context["record"].log_index})
    await practice_zone(request)  # the page shows times in it
    return render(request, "record.html", context)


@dataclass(frozen=True)
class StoredBlob:
    location: BlobLocation
    size: int
    name: str


def _find_blob(conn: Connection, sha256: bytes) -> StoredBlob | None:
    row = conn.execute(
        "SELECT b.file_name, b.key_salt, b.size,"
        " (SELECT a.name FROM attachments a WHERE a.blob_sha256 = b.sha256 LIMIT 1)"
        " FROM blobs b WHERE b.sha256 = ? AND b.destroyed_at IS NULL AND b.key_salt IS NOT NULL",
        (sha256,),
    ).fetchone()
    if row is None:
        return None
    return StoredBlob(BlobLocation(str(row[0]), bytes(row[1])), int(row[2]), str(row[3] or ""))


def content_disposition(name: str, fallback: str) -> str:
    """An attachment header that no file name can break out of (RFC 6266 + RFC 5987)."""
    ascii_name = _SAFE_NAME.sub("_", name).strip(" .") or fallback
    encoded = urllib.parse.quote(name or fallback, safe="")
    return f"attachment; filename=\"{ascii_name[:100]}\"; filename*=UTF-8''{encoded}"


_END = object()


@routes.get("/archive/attachments/{sha256}")
@require_role(ADMIN, ARCHIVIST)
async def download_attachment(request: web.Request) -> web.StreamResponse:
    text = request.match_info["sha256"]
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise web.HTTPNotFound()
    sha256 = bytes.fromhex(text)
    blob = await read(request, lambda conn: _find_blob(conn, sha256))
    if blob is None:
        raise web.HTTPNotFound()
    archive = state_of(request).box.require_archive()
    chunks: Iterator[bytes] = archive.blobs.read_chunks(blob.location, blob.size)
    await audit(request, "archive.download", text, {"name": blob.name})
    response = web.StreamResponse(
        headers={
            # Never rendered by the browser, whatever the file claims to be.
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(blob.name, f"{text[:16]}.bin"),
            "Content-Length": str(blob.size),
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, _END)) is not _END:
            await response.write(chunk)  # type: ignore[arg-type]
    except BlobError:
        # The blob failed to authenticate mid-stream: cut the download short so the
        # browser reports a failed (incomplete) transfer instead of a damaged file.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
