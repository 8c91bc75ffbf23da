"""records/<n>.json written from a template: the bytes `json_bytes(record_document(...))`
makes, at a fraction of the cost.

A record's document is mostly the same from one record to the next: its phone
(id, name, owner, key) and its conversation are those of the records around it.
Laying those two blocks out once per phone and conversation, and only the
record's own values each time, halved the ~20 µs a record the generic layout
took (a tenth of a 10,000-message export). Anything `_layout` leaves to
json.dumps (a float in the fields, say) goes the generic way, so the bytes are
always those of `json_bytes`; tests/test_export_streaming.py compares the two.
"""

from __future__ import annotations

from typing import Any

from strongroom.office.export_render import record_document
from strongroom.office.proofs import Unusual, json_bytes, layout, quote

_INNER = "\n "  # a top-level member's line break and indent


class RecordJson:
    """One export's records/<n>.json, with its phones' and conversations' blocks cached."""

    _LIMIT = 4096  # cached blocks: a matter touches a few phones and conversations

    def __init__(self) -> None:
        self._blocks: dict[tuple[Any, ...], str] = {}

    def _shared(self, row: Any) -> str:
        """The "conversation" and "device" members, laid out once per pair."""
        key = (row[9], row[10], row[11], bytes(row[12]), row[13], row[14], row[15])
        found = self._blocks.get(key)
        if found is None:
            if len(self._blocks) >= self._LIMIT:
                self._blocks.clear()
            conversation = {"ref": str(row[13]), "peer": str(row[14]), "owner": str(row[15])}
            device = {
                "id": int(row[9]),
                "name": str(row[10]),
                "owner": str(row[11]),
                "sign_key": bytes(row[12]).hex(),
                "pem": f"devices/D{int(row[9])}.pem",
            }
            found = self._blocks[key] = (
                f',\n "conversation": {layout(conversation, _INNER)}'
                f',\n "device": {layout(device, _INNER)}'
            )
        return found

    def __call__(self, row: Any, fields: dict[str, Any], attachment_file: str | None) -> bytes:
        try:
            attachment = "null" if attachment_file is None else str(quote(attachment_file))
            text = (
                f'{{\n "attachment_file": {attachment}{self._shared(row)}'
                f',\n "fields": {plain_layout(fields, _INNER)}'
                f',\n "kind": {quote(str(row[2]))}'
                f',\n "log_index": {int(row[5])}'
                f',\n "received_at": {int(row[6])}'
                f',\n "record_id": "{bytes(row[1]).hex()}"'
                f',\n "signature": "{bytes(row[4]).hex()}"'
                "\n}\n"
            )
        except Unusual:
            return json_bytes(record_document(row, fields, attachment_file))
        return text.encode()


def plain_layout(value: Any, newline: str) -> str:
    """`layout(plain(value), newline)` in one pass: a record's fields (bytes as hex)
    laid out without the copy `plain` makes first (~3 µs of a record's ~7).

    Whatever the two steps would treat unusually (a key that is not a string, which
    `plain` makes one; a tuple, which it leaves as it is) raises Unusual, and the
    caller lays the record out the generic way."""
    return layout(value, newline, hex_bytes=True)
