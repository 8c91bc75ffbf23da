"""export.json: who exported what, for whom, why, and the list of its records."""

from __future__ import annotations

from array import array
from typing import Any

from strongroom.archive.store import Archive
from strongroom.office.export_render import BundleText
from strongroom.office.proofs import json_bytes
from strongroom.office.sealed import HashingSink
from strongroom.proof.sth import SignedTreeHead

EXPORT_FORMAT = "strongroom-export-v1"
EXPORT_INDEX = "export.json"


def index_document(
    archive: Archive,
    text: BundleText,
    head: SignedTreeHead,
    *,
    records: int,
    attachments: int,
    destroyed: int,
) -> dict[str, Any]:
    """The document without its records list (`write_index` writes it a block at a time)."""
    request = text.request
    return {
        "format": EXPORT_FORMAT,
        "created_at_ms": text.at_ms,
        "exported_by": request.actor,
        "recipient": request.recipient,
        "reason": request.reason,
        "scope": request.scope.to_dict(),
        "time_zone": text.time_zone,
        "box_public_key": bytes(archive.signing_key.verify_key).hex(),
        "tree_head": head.to_dict(),
        "record_count": records,
        "attachment_count": attachments,
        "destroyed_in_selection": destroyed,
        "records": [],
    }


def write_index(out: HashingSink, document: dict[str, Any], records: array[int]) -> None:
    """export.json, byte for byte `json_bytes` of the document with its records list,
    without that list (a line per record) whole in memory: 8 MB for 100,000 records."""
    text = json_bytes(document)
    marker = b'\n "records": [],\n'
    if not records:
        out.write(text)
        return
    before, found, after = text.partition(marker)
    assert found, "export.json lost its records key"
    out.write(before + b'\n "records": [')
    for start in range(0, len(records), 4096):
        block = records[start : start + 4096]
        lead = "\n  " if start == 0 else ",\n  "
        out.write((lead + ",\n  ".join(map(str, block))).encode())
    out.write(b"\n ],\n" + after)
