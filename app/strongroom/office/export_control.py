"""Exports and the signing fingerprint over the control socket (a running box).

`strongroom export` sends one JSON request; the box answers with a stream of
frames, each ``type (1 byte) || length (4 bytes, big endian) || payload``:

    P  progress, JSON {"done": n, "total": m}
    D  bundle bytes, to append to the output file in order
    R  the result, JSON (records, attachments, manifest hash…): the bundle is complete
    E  an error, JSON {"error": "…"}: nothing valid was sent

The bundle goes from the export's snapshot straight to the socket: the box
writes nothing to its own disk (the CLI writes the file the user asked for).
"""

from __future__ import annotations

import asyncio
import json
import queue
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from strongroom.office import pickers
from strongroom.office.errors import OfficeError
from strongroom.office.export import export_to_stream
from strongroom.office.export_scope import ExportRequest, ExportScope, find_conversation
from strongroom.office.identity_facts import IdentityFacts
from strongroom.office.practice_days import checked_zone

FRAME_HEADER = struct.Struct(">cI")
CHUNK = 1 << 16
_END = object()


class ExportCancelled(Exception):
    """The client went away: stop building the bundle."""


def frame(kind: bytes, payload: bytes) -> bytes:
    return FRAME_HEADER.pack(kind, len(payload)) + payload


def parse_request(
    body: Any, conversation_id: int | None, matter_id: int | None = None
) -> ExportRequest:
    """The export a JSON body asks for; raise OfficeError/ValueError if it is incomplete."""
    if not isinstance(body, dict):
        raise ValueError("the export request must be a JSON object")
    kind = str(body.get("kind", ""))
    scope = ExportScope(
        kind,
        conversation_id=conversation_id,
        matter_id=matter_id,
        person=body.get("person"),
        from_ms=_int_or_none(body.get("from_ms")),
        to_ms=_int_or_none(body.get("to_ms")),
    )
    return ExportRequest(
        scope,
        str(body.get("actor", "")),
        str(body.get("recipient", "")),
        str(body.get("reason", "")),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


class _QueueSink:
    """What the export thread writes to: 64 KiB frames into a bounded queue."""

    def __init__(self, frames: queue.Queue[object], cancelled: threading.Event) -> None:
        self._frames = frames
        self._cancelled = cancelled
        self._buffer = bytearray()

    def put(self, item: object) -> None:
        while True:
            if self._cancelled.is_set():
                raise ExportCancelled("the client closed the connection")
            try:
                self._frames.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self.put(frame(b"D", bytes(self._buffer)))
            self._buffer.clear()


def _find_conversation(archive: Any, ref: str) -> int | None:
    conn = archive.reader()
    try:
        return find_conversation(conn, ref)
    finally:
        conn.close()


def _find_matter(conn: Any, ref_or_id: str) -> int | None:
    """A matter by its reference (UNIQUE, so indexed) or its number: two key look-ups."""
    wanted = ref_or_id.strip()
    row = conn.execute("SELECT id FROM matters WHERE ref = ?", (wanted,)).fetchone()
    number = pickers.number(wanted) if row is None and not wanted.startswith("#") else None
    if number is not None:
        row = conn.execute("SELECT id FROM matters WHERE id = ?", (number,)).fetchone()
    return None if row is None else int(row[0])


def resolve_request(archive: Any, body: Any) -> ExportRequest:
    """The export a JSON body asks for, its conversation or matter looked up by reference.

    Raise ValueError (or OfficeError) with a reason a user understands.
    """
    conversation = matter = None
    if isinstance(body, dict) and body.get("conversation"):
        conversation = _find_conversation(archive, str(body["conversation"]))
        if conversation is None:
            raise ValueError(f"no single conversation matches {body['conversation']!r}")
    if isinstance(body, dict) and body.get("matter"):
        conn = archive.reader()
        try:
            matter = _find_matter(conn, str(body["matter"]))
        finally:
            conn.close()
        if matter is None:
            raise ValueError(f"no matter {body['matter']!r}")
    if isinstance(body, dict) and (body.get("from_day") or body.get("to_day")):
        body = {**body, **_typed_days(archive, body)}  # as the web form reads them
    return parse_request(body, conversation, matter)


def _typed_days(archive: Any, body: dict[str, Any]) -> dict[str, int | None]:
    """`from_day`/`to_day` (YYYY-MM-DD, inclusive) read in the practice's time zone."""
    from strongroom.office.practice_days import day_range_ms, zone_of

    conn = archive.reader()
    try:
        zone_name = zone_of(conn, body.get("time_zone") or None)
    finally:
        conn.close()
    from_ms, to_ms = day_range_ms(body.get("from_day"), body.get("to_day"), zone_name)
    return {"from_ms": from_ms, "to_ms": to_ms}


def control_routes(box: Any) -> web.RouteTableDef:
    """The routes the runtime adds to its control socket app."""
    routes = web.RouteTableDef()

    @routes.get("/fingerprint")
    async def fingerprint(_request: web.Request) -> web.Response:
        if box.keys is None:
            return web.json_response({"phase": box.phase.value}, status=409)
        return web.json_response(IdentityFacts.of(box.keys).as_json())

    @routes.post("/register-details")
    async def register_details(request: web.Request) -> web.Response:
        from strongroom.office import register_facts

        if box.committer is None or box.archive is None:
            return web.json_response({"error": "the box is locked"}, status=409)
        body = await request.json()
        try:
            op = register_facts.set_details_op(dict(body["details"]), str(body["actor"]))
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if body["details"]:  # nothing to set: a look, neither a write nor an audit event
            await box.committer.submit(op)
        archive = box.archive

        def current() -> dict[str, str]:
            conn = archive.reader()
            try:
                return register_facts.read_details(conn)
            finally:
                conn.close()

        return web.json_response(await asyncio.to_thread(current))

    @routes.post("/export")
    async def export(request: web.Request) -> web.StreamResponse:
        if box.archive is None:
            return web.json_response({"error": "the box is locked"}, status=409)
        archive = box.archive
        try:
            body = await request.json()
            if isinstance(body, dict):  # an unknown zone is refused, not read as Paris
                checked_zone(body.get("time_zone"))
            export_request = await asyncio.to_thread(resolve_request, archive, body)
        except (OfficeError, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        frames: queue.Queue[object] = queue.Queue(maxsize=32)
        cancelled = threading.Event()
        sink = _QueueSink(frames, cancelled)

        def work() -> None:
            try:
                result = export_to_stream(
                    archive,
                    export_request,
                    sink,
                    zip_name=body.get("zip_name") or None,
                    progress=lambda done, total: sink.put(
                        frame(b"P", json.dumps({"done": done, "total": total}).encode())
                    ),
                    time_zone=body.get("time_zone") or None,
                )
                sink.flush()
                summary = {
                    "records": result.records,
                    "attachments": result.attachments,
                    "destroyed_in_selection": result.destroyed_in_selection,
                    "manifest_sha256": result.manifest_sha256.hex(),
                    "tree_size": result.tree_size,
                }
                sink.put(frame(b"R", json.dumps(summary).encode()))
            except ExportCancelled:
                pass
            except Exception as exc:  # reported to the CLI; the box keeps running
                with_error = frame(b"E", json.dumps({"error": str(exc)}).encode())
                if not cancelled.is_set():
                    sink.put(with_error)
            finally:
                if not cancelled.is_set():
                    sink.put(_END)

        worker = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            while (item := await asyncio.to_thread(frames.get)) is not _END:
                assert isinstance(item, bytes)
                await response.write(item)
        except BaseException:
            cancelled.set()  # the worker stops at its next write (within half a second)
            raise
        await worker
        await response.write_eof()
        return response

    return routes


async def stream_export(data_dir: Path, body: dict[str, Any]) -> AsyncIterator[tuple[bytes, bytes]]:
    """Client side: ask the running box for an export; yield its (type, payload) frames.

    Raise OSError if no box is running, ValueError with the box's reason if it refuses.
    """
    from strongroom.control import socket_path

    connector = aiohttp.UnixConnector(path=str(socket_path(data_dir)))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post("http://box/export", json=body) as response,
    ):
        if response.status != 200:
            text = await response.text()
            try:
                reason = json.loads(text).get("error") or text
            except ValueError:
                reason = text
            raise ValueError(str(reason))
        while True:
            try:
                header = await response.content.readexactly(FRAME_HEADER.size)
            except asyncio.IncompleteReadError:
                return
            kind, length = FRAME_HEADER.unpack(header)
            yield kind, await response.content.readexactly(length)
