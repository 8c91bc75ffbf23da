"""Sealed exports: a conversation, a person's or a matter's records, or a list of records,
as one .zip.

Contents (under one top directory, see `sealed` for the signed envelope)::

    export.json              who exported what, for whom, why; the record list
    records.html, records.pdf   human-readable
    records/L<n>.cbor        the record exactly as the phone signed it
    records/L<n>.sig         the phone's raw Ed25519 signature
    records/L<n>.json        the same record decoded, with device and log facts
    devices/D<id>.pem        each signing phone's public key
    attachments/L<n>-<name>  decrypted attachments
    proofs/L<n>.leaf|.json|.path  the log leaf and its inclusion proof to sth.txt
    check_proofs.sh          the proofs and signatures checked with sh, coreutils, openssl

`export_bundle` writes to a file: a temporary one next to the target
(`.<name>.<pid>.partial`, so that the next export can tell a killed run's
leftover from a running one's), logged as an audit event naming the manifest
hash, and only then renamed into place. `export_to_stream` writes the same
bundle to any sink (an encrypted spool, the control socket) and never touches
the disk itself: the HTML is written in a second pass over the same snapshot
instead of through a temporary file.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import cbor2

from strongroom.archive import writes
from strongroom.archive.blobs import BlobLocation
from strongroom.archive.db import Connection
from strongroom.archive.nodes import SharedProofs, SqlNodeStore
from strongroom.archive.store import Archive, reader_log
from strongroom.office.bundle_pdf import (
    DEJAVU_DIR,
    RenderedRecord,
    write_html_head,
    write_html_record,
    write_html_tail,
)
from strongroom.office.consistency import write_consistency
from strongroom.office.errors import NothingToExport
from strongroom.office.export_index import (
    EXPORT_INDEX,
    index_document,
    write_index,
)
from strongroom.office.export_instructions import export_instructions
from strongroom.office.export_json import RecordJson
from strongroom.office.export_render import (
    BundleText,
    practice_time_zone,
    rendered_record,
)
from strongroom.office.export_scope import (
    SCOPE_KINDS,
    ExportRequest,
    ExportScope,
    count_records,
    select_records,
)
from strongroom.office.leftovers import remove_files_of_dead_processes
from strongroom.office.pdf_stream import StreamingPdf
from strongroom.office.proofs import entry_stem, proof_files
from strongroom.office.sealed import (
    CHECK_PROOFS_SH,
    CHECK_PROOFS_SH_NAME,
    ByteSink,
    SealedBundleWriter,
    box_key_fingerprint,
    unicode_file_name,
)
from strongroom.office.zip_stream import already_compressed
from strongroom.proof.pem import ed25519_public_key_pem

__all__ = [
    "SCOPE_KINDS",
    "ExportRequest",
    "ExportResult",
    "ExportScope",
    "export_bundle",
    "export_to_stream",
]

PARTIAL_SUFFIX = ".partial"

# progress(done, total): records written so far out of those selected.
ExportProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportResult:
    path: Path | None
    records: int
    attachments: int
    destroyed_in_selection: int
    manifest_sha256: bytes
    log_index: int
    tree_size: int
    root: str = ""
    log_indexes: tuple[int, ...] = ()  # the records it holds (a pending download checks them)


@dataclass
class _Counts:
    records: int = 0
    attachments: int = 0
    destroyed: int = 0
    log_indexes: array[int] = field(default_factory=lambda: array("q"))  # 8 bytes each
    devices: set[int] = field(default_factory=set)


def bundle_root(archive: Archive) -> str:
    """The top directory (and default file name) of an export made now."""
    stamp = datetime.fromtimestamp(archive.clock(), UTC).strftime("%Y%m%d-%H%M%S")
    return f"strongroom-export-{stamp}"


def export_bundle(
    archive: Archive,
    request: ExportRequest,
    out_path: Path,
    *,
    font_dir: Path = DEJAVU_DIR,
    progress: ExportProgress | None = None,
    time_zone: str | None = None,
) -> ExportResult:
    """Write the sealed export to `out_path` and log it; return what it holds."""
    # The partial bundle may be complete plaintext: a killed export's is removed
    # here, once its process is gone (a concurrent export of the same name keeps its own).
    remove_files_of_dead_processes(out_path.parent, f".{out_path.name}.", PARTIAL_SUFFIX)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        with partial.open("wb") as sink:
            result = export_to_stream(
                archive,
                request,
                sink,
                zip_name=out_path.name,
                font_dir=font_dir,
                progress=progress,
                time_zone=time_zone,
                before_audit=lambda: _flush(sink),
            )
        os.replace(partial, out_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(
        out_path,
        result.records,
        result.attachments,
        result.destroyed_in_selection,
        result.manifest_sha256,
        result.log_index,
        result.tree_size,
        result.root,
        result.log_indexes,
    )


def _flush(sink: IO[bytes]) -> None:
    sink.flush()
    os.fsync(sink.fileno())


def export_to_stream(
    archive: Archive,
    request: ExportRequest,
    sink: ByteSink,
    *,
    zip_name: str | None = None,
    font_dir: Path = DEJAVU_DIR,
    progress: ExportProgress | None = None,
    time_zone: str | None = None,
    before_audit: Callable[[], None] | None = None,
) -> ExportResult:
    """Write the sealed export to `sink` (sequentially, no seek), then log it."""
    at_ms = int(archive.clock() * 1000)
    root = bundle_root(archive)
    conn = archive.reader()
    try:
        # Its own connection, read once in order: a 4 MiB page cache, not the 16 MiB
        # a connection gets (on a 100,000-message matter that was 12 MiB of the box's
        # memory spent on pages read once).
        conn.execute("PRAGMA cache_size = -4096")
        conn.execute("BEGIN")  # one snapshot: records, nodes and tree head agree
        head = archive.latest_tree_head(conn)
        if head is None:
            raise NothingToExport("the archive is empty")
        total = count_records(conn, request.scope)
        bundle = SealedBundleWriter(sink, root, archive.signing_key, head)
        zone_name = time_zone or practice_time_zone(conn)
        text = BundleText(request, head, at_ms, zone_name, _names(conn, request.scope))
        try:
            counts = _write_content(archive, conn, bundle, text, font_dir, total, progress)
            fingerprint = box_key_fingerprint(bytes(archive.signing_key.verify_key))
            manifest_sha = bundle.finish(export_instructions(root, fingerprint, zip_name))
        except BaseException:
            bundle.abort()
            raise
    finally:
        conn.close()
    if before_audit is not None:
        before_audit()
    details = {
        "scope": request.scope.describe(),
        "recipient": request.recipient,
        "reason": request.reason,
        "records": counts.records,
        "attachments": counts.attachments,
        "manifest_sha256": manifest_sha.hex(),
        "tree_size": head.tree_size,
        "file": zip_name or f"{root}.zip",
    }
    index = archive.write(writes.audit(request.actor, "export", request.scope.describe(), details))
    return ExportResult(
        None,
        counts.records,
        counts.attachments,
        counts.destroyed,
        manifest_sha,
        int(index),
        head.tree_size,
        root,
        tuple(counts.log_indexes),
    )


def _write_content(
    archive: Archive,
    conn: Connection,
    bundle: SealedBundleWriter,
    text: BundleText,
    font_dir: Path,
    total: int,
    progress: ExportProgress | None,
) -> _Counts:
    head = bundle.tree_head
    log = reader_log(conn)
    request = text.request
    counts = _Counts()
    device_keys: dict[int, bytes] = {}
    attachments: dict[int, str] = {}
    # One proof builder for the whole export: the audit paths of its records share
    # their upper nodes and the right edge's folds, each computed once.
    # Its node cache is kept small: the records of a matter are far apart in the log,
    # so below the top levels a node is rarely read twice (65,536 cached nodes were
    # 10 MB of the box's memory for nothing).
    nodes = SqlNodeStore(conn)
    nodes.CACHE_ENTRIES = 4096
    proofs = SharedProofs(nodes, head.tree_size)
    record_json = RecordJson()
    for row in select_records(conn, request.scope, with_leaf=True):
        if row[8] is not None or row[3] is None:
            counts.destroyed += 1
            continue
        body, log_index = bytes(row[3]), int(row[5])
        fields = cbor2.loads(body)
        stem = entry_stem(log_index)
        files = [
            (f"records/{stem}.cbor", body, False),
            (f"records/{stem}.sig", bytes(row[4]), False),
        ]
        device_keys[int(row[9])] = bytes(row[12])
        attachment_file = None
        if str(row[2]) == "attachment":  # its file comes after the record's own two
            bundle.add_small(files)
            files = []
            attachment_file = _write_attachment(archive, conn, bundle, row, fields, stem)
            if attachment_file is not None:
                attachments[log_index] = attachment_file
        files.append((f"records/{stem}.json", record_json(row, fields, attachment_file), True))
        files += proof_files(bundle, log_index, bytes(row[16]), proofs.proof(log_index))
        bundle.add_small(files)  # the record's files, in the order they always came
        counts.records += 1
        counts.attachments += attachment_file is not None
        counts.log_indexes.append(log_index)
        if progress is not None:
            progress(counts.records + counts.destroyed, total)
    if counts.records == 0:
        raise NothingToExport("no record with content matches this export")
    # Two more passes over the same snapshot: the HTML and the PDF go straight into
    # their members, page by page, never through a temporary file or memory (each
    # is the whole conversation in clear).
    with bundle.open("records.html", level=1) as page:
        write_html_head(page, text.title, text.meta())
        for record in _readable(conn, text, attachments):
            write_html_record(page, record)
        write_html_tail(page)
    with bundle.open("records.pdf", level=1) as out:
        pdf = StreamingPdf(out, text.title, text.meta(), font_dir)
        for record in _readable(conn, text, attachments):
            pdf.add_record(record)
        pdf.close()
    for device_id, key in sorted(device_keys.items()):
        bundle.add_bytes(f"devices/D{device_id}.pem", ed25519_public_key_pem(key).encode())
    bundle.add_bytes(CHECK_PROOFS_SH_NAME, CHECK_PROOFS_SH.encode())
    write_consistency(bundle, log, conn)
    with bundle.open(EXPORT_INDEX) as index:
        document = index_document(
            archive,
            text,
            head,
            records=counts.records,
            attachments=counts.attachments,
            destroyed=counts.destroyed,
        )
        write_index(index, document, counts.log_indexes)
    return counts


def _readable(
    conn: Connection, text: BundleText, attachments: dict[int, str]
) -> Iterator[RenderedRecord]:
    """The selection as a reader sees it, gaps included, read again from the snapshot."""
    for row in select_records(conn, text.request.scope):
        if row[8] is not None or row[3] is None:
            yield text.gap(row)
            continue
        fields = cbor2.loads(bytes(row[3]))
        yield rendered_record(row, fields, attachments.get(int(row[5])), text)


def _names(conn: Connection, scope: ExportScope) -> tuple[str, ...]:
    """A conversation's two sides, or a matter's reference and client, for the title
    (never an internal number)."""
    if scope.kind == "matter":
        found = conn.execute(
            "SELECT ref, client FROM matters WHERE id = ?", (scope.matter_id,)
        ).fetchone()
        if found is None:
            raise NothingToExport(f"no matter {scope.matter_id}")
        return (str(found[0]), str(found[1]))
    if scope.kind != "conversation":
        return ()
    row = conn.execute(
        "SELECT owner, peer, ref FROM conversations WHERE id = ?", (scope.conversation_id,)
    ).fetchone()
    return () if row is None else (str(row[0]), str(row[1]) or str(row[2]))


def _write_attachment(
    archive: Archive,
    conn: Connection,
    bundle: SealedBundleWriter,
    row: Any,
    fields: dict[str, Any],
    stem: str,
) -> str | None:
    if str(row[2]) != "attachment":
        return None
    blob = conn.execute(
        "SELECT b.file_name, b.key_salt, b.size FROM blobs b WHERE b.sha256 = ?"
        " AND b.destroyed_at IS NULL",
        (fields["blob"]["sha256"],),
    ).fetchone()
    if blob is None:
        return None  # not uploaded yet, or destroyed: the record still proves what it was
    name = f"attachments/{stem}-{unicode_file_name(str(fields['blob']['name']))}"
    location = BlobLocation(str(blob[0]), bytes(blob[1]))
    # A photo or a zip is stored (deflate's level 0), not deflated again for nothing.
    level = 0 if already_compressed(str(fields["blob"].get("mime", "")), name) else 6
    bundle.add_chunks(name, archive.blobs.read_chunks(location, int(blob[2])), level=level)
    return name
