"""Sealed exports: a conversation, a person's records or a list of records, as one .zip.

Contents (under one top directory, see `sealed` for the signed envelope)::

    export.json              who exported what, for whom, why; the record list
    records.html, records.pdf   human-readable
    records/L<n>.cbor        the record exactly as the phone signed it
    records/L<n>.sig         the phone's raw Ed25519 signature
    records/L<n>.json        the same record decoded, with device and log facts
    devices/D<id>.pem        each signing phone's public key
    attachments/L<n>-<name>  decrypted attachments
    proofs/L<n>.leaf|.json   the log leaf and its inclusion proof to sth.txt
    check_proofs.py          stdlib-only proof checker

The bundle is built in a temporary file next to the target (`.<name>.<pid>.partial`,
so that the next export can tell a killed run's leftover from a running one's),
streamed member by member (records come from a cursor, attachments chunk by
chunk), logged as an audit event naming the manifest hash, and only then
renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2

from strongroom.archive import writes
from strongroom.archive.blobs import BlobLocation
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive, reader_log
from strongroom.office.bundle_pdf import (
    DEJAVU_DIR,
    PdfRenderer,
    RenderedRecord,
    write_html_head,
    write_html_record,
    write_html_tail,
)
from strongroom.office.errors import NothingToExport
from strongroom.office.leftovers import remove_files_of_dead_processes
from strongroom.office.proofs import entry_stem, json_bytes, write_proof
from strongroom.office.sealed import (
    CHECK_PROOFS_PY,
    PROOF_SECTION_EN,
    PROOF_SECTION_FR,
    SealedBundleWriter,
    box_key_fingerprint,
    safe_file_name,
)
from strongroom.office.sealed import verify_instructions as envelope_instructions
from strongroom.proof.pem import ed25519_public_key_pem

EXPORT_FORMAT = "strongroom-export-v1"
EXPORT_INDEX = "export.json"
SCOPE_KINDS = ("conversation", "person", "records")
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class ExportScope:
    kind: str
    conversation_id: int | None = None
    person: str | None = None
    record_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SCOPE_KINDS:
            raise NothingToExport(f"export scope must be one of {', '.join(SCOPE_KINDS)}")
        if self.kind == "conversation" and self.conversation_id is None:
            raise NothingToExport("a conversation export names the conversation")
        if self.kind == "person" and not (self.person or "").strip():
            raise NothingToExport("a person export names the person")
        if self.kind == "records" and not self.record_ids:
            raise NothingToExport("a record-list export needs at least one record")

    def describe(self) -> str:
        if self.kind == "conversation":
            return f"conversation:{self.conversation_id}"
        if self.kind == "person":
            return f"person:{self.person}"
        return f"records:{len(self.record_ids)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "conversation_id": self.conversation_id,
            "person": self.person,
            "record_ids": list(self.record_ids),
        }


@dataclass(frozen=True)
class ExportRequest:
    scope: ExportScope
    actor: str  # who exports
    recipient: str  # for whom (a court, the patient, a bar association)
    reason: str  # why

    def __post_init__(self) -> None:
        if not (self.actor.strip() and self.recipient.strip() and self.reason.strip()):
            raise NothingToExport("an export names who makes it, for whom and why")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    records: int
    attachments: int
    destroyed_in_selection: int
    manifest_sha256: bytes
    log_index: int
    tree_size: int


_SELECT = (
    "SELECT r.id, r.record_id, r.kind, r.body, r.signature, r.log_index, r.received_at,"
    " r.sent_at, r.destroyed_at, d.id, d.name, d.owner, d.sign_key, c.ref, c.peer, c.owner"
    " FROM records r JOIN devices d ON d.id = r.device_id"
    " JOIN conversations c ON c.id = r.conversation_id"
)
_ORDER = " ORDER BY r.conversation_id, r.sent_at, r.id"


def _person_conversations(conn: Connection, person: str) -> list[int]:
    # The same rule as a hold on the person (#13): owner, other party, sender, mail partner.
    from strongroom.office.facts import load_facts

    return sorted(f.id for f in load_facts(conn).values() if f.involves(person))


def select_records(conn: Connection, scope: ExportScope) -> Iterator[Any]:
    """Rows for the scope, in reading order, as a cursor (never all in memory)."""
    import json

    if scope.kind == "conversation":
        return conn.execute(
            _SELECT + " WHERE r.conversation_id = ?" + _ORDER, (scope.conversation_id,)
        )
    if scope.kind == "person":
        ids = _person_conversations(conn, scope.person or "")
        where = " WHERE r.conversation_id IN (SELECT value FROM json_each(?))"
        return conn.execute(_SELECT + where + _ORDER, (json.dumps(ids),))
    where = " WHERE r.id IN (SELECT value FROM json_each(?))"
    return conn.execute(_SELECT + where + _ORDER, (json.dumps(list(scope.record_ids)),))


def _plain(value: Any) -> Any:
    """CBOR values as JSON: bytes become lowercase hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _rendered(row: Any, fields: dict[str, Any]) -> RenderedRecord:
    kind = str(row[2])
    detail = ""
    if kind == "attachment":
        blob = fields.get("blob", {})
        detail = f"Pièce jointe / attachment : {blob.get('name', '')} ({blob.get('size', 0)} o)"
    elif kind == "receipt":
        detail = f"{fields.get('receipt', '')} → {fields.get('ref', '')}"
    elif kind in ("edit", "deletion"):
        detail = f"→ {fields.get('ref', '')}"
    peer = str(row[14])
    return RenderedRecord(
        log_index=int(row[5]),
        kind=kind,
        sent_at=int(row[7]),
        sender=str(fields.get("from", "")),
        direction=str(fields.get("dir", "")),
        text=str(fields.get("text", "") or ""),
        conversation=f"{row[13]}" + (f" ({peer})" if peer else ""),
        detail=detail,
    )


@dataclass
class _Counts:
    records: int = 0
    attachments: int = 0
    destroyed: int = 0
    log_indexes: list[int] = field(default_factory=list)
    devices: set[int] = field(default_factory=set)


def export_bundle(
    archive: Archive, request: ExportRequest, out_path: Path, *, font_dir: Path = DEJAVU_DIR
) -> ExportResult:
    """Write the sealed export to `out_path` and log it; return what it holds."""
    at_ms = int(archive.clock() * 1000)
    stamp = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")
    root = f"strongroom-export-{stamp}"
    # The partial bundle may be complete plaintext: a killed export's is removed
    # here, once its process is gone (a concurrent export of the same name keeps its own).
    remove_files_of_dead_processes(out_path.parent, f".{out_path.name}.", PARTIAL_SUFFIX)
    partial = out_path.with_name(f".{out_path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    conn = archive.reader()
    try:
        conn.execute("BEGIN")  # one snapshot: records, nodes and tree head agree
        head = archive.latest_tree_head(conn)
        if head is None:
            raise NothingToExport("the archive is empty")
        bundle = SealedBundleWriter(partial, root, archive.signing_key, head)
        try:
            counts = _write_content(archive, conn, bundle, request, at_ms, font_dir)
            fingerprint = box_key_fingerprint(bytes(archive.signing_key.verify_key))
            manifest_sha = bundle.finish(_instructions(root, fingerprint))
        except BaseException:
            bundle.abort()
            raise
    finally:
        conn.close()
    try:
        details = {
            "scope": request.scope.describe(),
            "recipient": request.recipient,
            "reason": request.reason,
            "records": counts.records,
            "attachments": counts.attachments,
            "manifest_sha256": manifest_sha.hex(),
            "tree_size": head.tree_size,
            "file": out_path.name,
        }
        index = archive.write(
            writes.audit(request.actor, "export", request.scope.describe(), details)
        )
        os.replace(partial, out_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(
        out_path,
        counts.records,
        counts.attachments,
        counts.destroyed,
        manifest_sha,
        int(index),
        head.tree_size,
    )


def _write_content(
    archive: Archive,
    conn: Connection,
    bundle: SealedBundleWriter,
    request: ExportRequest,
    at_ms: int,
    font_dir: Path,
) -> _Counts:
    head = bundle.tree_head
    log = reader_log(conn)
    title = f"Export Strongroom — {request.scope.describe()}"
    meta = [
        ("Exporté par / exported by", request.actor),
        ("Pour / for", request.recipient),
        ("Motif / reason", request.reason),
        ("Date", datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="seconds")),
        ("Journal / log", f"{head.tree_size} entrées, racine {head.root_hash.hex()}"),
    ]
    pdf = PdfRenderer(title, meta, font_dir)
    counts = _Counts()
    device_keys: dict[int, bytes] = {}
    # zipfile writes one member at a time: the HTML grows in a temporary file
    # beside the bundle (which holds the same plaintext) and is copied in after.
    with tempfile.TemporaryFile(dir=bundle.path.parent) as page:
        write_html_head(page, title, meta)
        for row in select_records(conn, request.scope):
            if row[8] is not None or row[3] is None:
                counts.destroyed += 1
                continue
            body, log_index = bytes(row[3]), int(row[5])
            fields = cbor2.loads(body)
            stem = entry_stem(log_index)
            bundle.add_bytes(f"records/{stem}.cbor", body)
            bundle.add_bytes(f"records/{stem}.sig", bytes(row[4]))
            device_keys[int(row[9])] = bytes(row[12])
            attachment_file = _write_attachment(archive, conn, bundle, row, fields, stem)
            document = {
                "log_index": log_index,
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
                "fields": _plain(fields),
                "attachment_file": attachment_file,
            }
            bundle.add_bytes(f"records/{stem}.json", json_bytes(document))
            leaf = conn.execute(
                "SELECT leaf_data FROM log_leaves WHERE idx = ?", (log_index,)
            ).fetchone()
            write_proof(
                bundle, log_index, bytes(leaf[0]), log.inclusion_proof(log_index, head.tree_size)
            )
            rendered = _rendered(row, fields)
            write_html_record(page, rendered)
            pdf.add_record(rendered)
            counts.records += 1
            counts.attachments += attachment_file is not None
            counts.log_indexes.append(log_index)
        write_html_tail(page)
        page.seek(0)
        bundle.add_chunks("records.html", iter(lambda: page.read(1 << 16), b""))
    if counts.records == 0:
        raise NothingToExport("no record with content matches this export")
    for device_id, key in sorted(device_keys.items()):
        bundle.add_bytes(f"devices/D{device_id}.pem", ed25519_public_key_pem(key).encode())
    bundle.add_bytes("records.pdf", pdf.output())
    bundle.add_bytes("check_proofs.py", CHECK_PROOFS_PY.encode())
    index = {
        "format": EXPORT_FORMAT,
        "created_at_ms": at_ms,
        "exported_by": request.actor,
        "recipient": request.recipient,
        "reason": request.reason,
        "scope": request.scope.to_dict(),
        "box_public_key": bytes(archive.signing_key.verify_key).hex(),
        "tree_head": head.to_dict(),
        "record_count": counts.records,
        "attachment_count": counts.attachments,
        "destroyed_in_selection": counts.destroyed,
        "records": counts.log_indexes,
    }
    bundle.add_bytes(EXPORT_INDEX, json_bytes(index))
    return counts


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
    name = f"attachments/{stem}-{safe_file_name(str(fields['blob']['name']))}"
    location = BlobLocation(str(blob[0]), bytes(blob[1]))
    bundle.add_chunks(name, archive.blobs.read_chunks(location, int(blob[2])))
    return name


_DEVICE_CMD = (
    "openssl pkeyutl -verify -pubin -inkey devices/D<id>.pem -rawin -in message.bin"
    " -sigfile records/<n>.sig"
)
_RECORDS_FR = f"""
7. Chaque message est signé par le téléphone qui l'a écrit. Pour vérifier
   records/<n>.cbor avec la clé du téléphone indiquée dans records/<n>.json :
       (printf 'strongroom-record-v1\\000'; cat records/<n>.cbor) > message.bin
       {_DEVICE_CMD}
   L'empreinte de l'enregistrement (sha256sum records/<n>.cbor) est celle que
   contient la feuille proofs/<n>.leaf.
"""
_RECORDS_EN = f"""
7. Each message is signed by the phone that wrote it. To check records/<n>.cbor
   with the phone key named in records/<n>.json:
       (printf 'strongroom-record-v1\\000'; cat records/<n>.cbor) > message.bin
       {_DEVICE_CMD}
   The record's hash (sha256sum records/<n>.cbor) is the one inside the leaf
   proofs/<n>.leaf.
"""


def _instructions(root: str, fingerprint: str) -> str:
    return envelope_instructions(
        root, fingerprint, PROOF_SECTION_FR + _RECORDS_FR, PROOF_SECTION_EN + _RECORDS_EN
    )
