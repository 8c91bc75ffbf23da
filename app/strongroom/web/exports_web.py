"""Web exports without clear text on disk.

The export job writes the sealed bundle through an encrypted spool
(office.spool) whose key stays in the job's memory. The download decrypts it
on the fly and removes the spool once the browser has it all. If any record
of the export has been destroyed meanwhile (retention), the download is
refused and the spool removed: an export waiting for its download does not
outlive the records it holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.office.export import export_to_stream
from strongroom.office.export_scope import ExportRequest, ExportScope
from strongroom.office.practice_days import day_range_ms
from strongroom.office.spool import SpoolError, SpoolWriter, read_spool
from strongroom.web.auth import session_of
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.jobs import Job, JobResult, Progress
from strongroom.web.picker_views import MAX_TYPED_CHARS, subject_from_form
from strongroom.web.state import WebState, audit, read

_END = object()


def scope_from_form(conn: Connection, form: Any, zone_name: str) -> ExportScope:
    """The scope the form names: the picked conversation or matter (`<field>_id`), else
    the typed text resolved by index look-ups (picker_views), its days read in the
    practice's zone `zone_name`. Raise pickers.NoMatch when a typed value names none or
    several, OfficeError if something is missing, ValueError if a date is not a date."""
    kind = text_field(form, "kind", 20)
    since, until = day_range_ms(
        text_field(form, "since", 20), text_field(form, "until", 20), zone_name
    )
    if kind == "person":
        # As typed less control characters (a person is matched loosely: office.facts).
        typed = text_field(form, "person", MAX_TYPED_CHARS)
        person = "".join(c for c in typed if c.isprintable()).strip()
        return ExportScope("person", person=person, from_ms=since, to_ms=until)
    if kind == "matter":
        matter = subject_from_form(conn, form, "matter")
        return ExportScope("matter", matter_id=matter, from_ms=since, to_ms=until)
    conversation = subject_from_form(conn, form, "conversation")
    return ExportScope("conversation", conversation_id=conversation, from_ms=since, to_ms=until)


def request_from_form(conn: Connection, form: Any, actor: str, zone_name: str) -> ExportRequest:
    """The export the form asks for (`scope_from_form`), by whom, for whom and why."""
    return ExportRequest(
        scope_from_form(conn, form, zone_name),
        actor=actor,
        recipient=text_field(form, "recipient", 200),
        reason=text_field(form, "reason", 500),
    )


def start_export_job(state: WebState, export_request: ExportRequest) -> Job:
    archive = state.box.require_archive()
    state.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    async def body(progress: Progress) -> JobResult:
        progress(0.02, "export")
        spool = SpoolWriter(state.work_dir / f"export-{secrets.token_hex(8)}.spool")

        def run() -> Any:
            try:
                # export_to_stream logs the export itself (an audit event naming the manifest).
                result = export_to_stream(
                    archive,
                    export_request,
                    spool,
                    progress=lambda done, total: progress(0.02 + 0.96 * done / max(total, 1), ""),
                    before_audit=spool.close,
                )
            except BaseException:
                spool.discard()
                raise
            return result

        result = await asyncio.to_thread(run)
        return JobResult(
            summary=N_("The export is ready."),
            file=spool.path,
            download_name=f"{result.root}.zip",
            file_key=spool.key,
            log_indexes=result.log_indexes,
        )

    return state.jobs.start("export", export_request.actor, body)


def _destroyed_since(conn: Connection, log_indexes: tuple[int, ...]) -> int:
    import json

    row = conn.execute(
        "SELECT count(*) FROM records WHERE destroyed_at IS NOT NULL"
        " AND log_index IN (SELECT value FROM json_each(?))",
        (json.dumps(list(log_indexes)),),
    ).fetchone()
    return int(row[0])


def _forget_file(job: Job) -> None:
    result = job.result
    if result is not None and result.file is not None:
        result.file.unlink(missing_ok=True)
        job.result = dataclasses.replace(result, file=None, file_key=None)


async def download_spool(
    request: web.Request, job: Job, name: str, headers: dict[str, str]
) -> web.StreamResponse:
    result = job.result
    assert result is not None and result.file is not None and result.file_key is not None
    destroyed = await read(request, lambda conn: _destroyed_since(conn, result.log_indexes))
    if destroyed:
        _forget_file(job)
        await audit(request, "export.discarded", job.id, {"destroyed_records": destroyed})
        session_of(request).flash(
            "error", "Records of this export were destroyed since: the export was destroyed too."
        )
        raise web.HTTPSeeOther("/exports")
    chunks: Iterator[bytes] = read_spool(result.file, result.file_key)
    await audit(request, "export.download", job.id, {"file": name})
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    try:
        while (chunk := await asyncio.to_thread(next, chunks, _END)) is not _END:
            await response.write(chunk)  # type: ignore[arg-type]
    except SpoolError:
        _forget_file(job)  # tampered on disk: never serve it, never keep it
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    _forget_file(job)  # downloaded: nothing of it stays on the box
    return response
