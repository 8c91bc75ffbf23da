"""Conversation records as phones sign and push them.

A record is a CBOR map in canonical (deterministic) encoding. The phone signs
`RECORD_SIGNING_CONTEXT || record_bytes` with its Ed25519 device key and
pushes `{"record": bstr, "sig": bstr}`. The record id is SHA-256 of the record
bytes, so pushing the same record twice names the same record.

Everything here treats input as hostile: `parse_record` accepts only the
documented fields with the documented types and bounds.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from strongroom.archive.errors import RecordRejected
from strongroom.cbor_check import CborRejected, check_cbor

RECORD_VERSION = 1
RECORD_SIGNING_CONTEXT = b"strongroom-record-v1\x00"
KINDS = ("message", "edit", "deletion", "receipt", "attachment")
MAX_TEXT_CHARS = 64 * 1024
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 256
MAX_RECORD_BYTES = 96 * 1024

_REQUIRED = {
    "message": {"v", "kind", "id", "conv", "dir", "from", "at", "text"},
    "edit": {"v", "kind", "id", "conv", "dir", "from", "at", "text", "ref"},
    "deletion": {"v", "kind", "id", "conv", "dir", "from", "at", "ref"},
    "receipt": {"v", "kind", "id", "conv", "from", "at", "ref", "receipt"},
    "attachment": {"v", "kind", "id", "conv", "dir", "from", "at", "ref", "blob"},
}
_OPTIONAL = {"peer", "dev"}


@dataclass(frozen=True)
class BlobRef:
    sha256: bytes
    size: int
    name: str
    mime: str


@dataclass(frozen=True)
class Record:
    """A validated record; `raw` is exactly the bytes the device signed."""

    raw: bytes
    signature: bytes
    kind: str
    client_id: str
    conversation: str
    peer: str
    direction: str | None
    sender: str
    sent_at: int
    text: str | None
    ref: str | None
    receipt: str | None
    blob: BlobRef | None

    @functools.cached_property
    def record_id(self) -> bytes:
        # Cached: the dedup lookup, the row, the log leaf and the ack all need it.
        return hashlib.sha256(self.raw).digest()


def _text(fields: dict[str, Any], key: str, limit: int, *, allow_empty: bool = False) -> str:
    value = fields[key]
    if not isinstance(value, str):
        raise RecordRejected(f"field {key!r} must be text")
    if not allow_empty and not value:
        raise RecordRejected(f"field {key!r} must not be empty")
    if len(value) > limit:
        raise RecordRejected(f"field {key!r} is longer than {limit} characters")
    if "\x00" in value:
        raise RecordRejected(f"field {key!r} contains a NUL character")
    return value


def _int(fields: dict[str, Any], key: str, low: int, high: int) -> int:
    value = fields[key]
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RecordRejected(f"field {key!r} must be an integer in [{low}, {high}]")
    return value


def _blob(value: Any, max_size: int) -> BlobRef:
    if not isinstance(value, dict) or set(value) != {"sha256", "size", "name", "mime"}:
        raise RecordRejected("field 'blob' must be a map of sha256, size, name, mime")
    sha = value["sha256"]
    if not isinstance(sha, bytes) or len(sha) != 32:
        raise RecordRejected("blob sha256 must be 32 bytes")
    size = _int(value, "size", 0, max_size)
    name = _text(value, "name", MAX_NAME_CHARS)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RecordRejected("blob name must be a plain file name")
    return BlobRef(sha, size, name, _text(value, "mime", 128))


def parse_record(raw: bytes, signature: bytes, *, max_blob_size: int) -> Record:
    """Decode and validate one record's bytes; raise RecordRejected with a reason."""
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordRejected("record too large")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise RecordRejected("signature must be 64 bytes")
    try:
        # The bytes come from a phone: walk them before cbor2 builds anything (no
        # tags, floats or indefinite lengths), which also proves them canonical.
        check_cbor(raw)
        fields = cbor2.loads(raw)
    except CborRejected as exc:
        if exc.canonical:
            raise RecordRejected("record is not in canonical CBOR encoding") from exc
        raise RecordRejected(f"record is not valid CBOR of the protocol's subset: {exc}") from exc
    except Exception as exc:  # cbor2 raises several unrelated types on garbage
        raise RecordRejected("record is not valid CBOR") from exc
    return _record_of(raw, signature, fields, max_blob_size)


def parse_stored_record(raw: bytes, signature: bytes, *, max_blob_size: int) -> Record:
    """parse_record for bytes already authenticated (verify: their hash is the record
    id and a paired device's signature over them verifies), at half its cost.

    The strict walk (check_cbor) is what costs: 6 of 13 us a record here, the
    largest part of a full verify's reading thread. Here cbor2 decodes first and
    the walk's guarantees are proven after: the decoded map must pass the same
    field checks, its keys (and the blob's) must be in canonical order, and
    cbor2's encoding of it in that order must be exactly `raw`. The checks leave
    only text, integers, byte strings and the blob map, which cbor2 encodes with
    shortest heads and definite lengths, so equal bytes mean `raw` was canonical
    CBOR of the protocol's subset: no tag, float, indefinite length, long head or
    repeated key (a repeat would leave fewer keys, so fewer bytes). Anything
    else goes through parse_record, for its exact reason. What is given up:
    cbor2 sees the bytes before the walk; they are bounded (MAX_RECORD_BYTES) and
    were signed by a paired device, and cbor2's own errors are caught.
    """
    if len(raw) <= MAX_RECORD_BYTES and isinstance(signature, bytes) and len(signature) == 64:
        try:
            fields = cbor2.loads(raw)
            record = _record_of(raw, signature, fields, max_blob_size)
            if (
                _canonical_order(fields)
                and (record.blob is None or tuple(fields["blob"]) == _BLOB_ORDER)
                and cbor2.dumps(fields) == raw
            ):
                return record
        except Exception:  # noqa: S110 - the strict parse below says what is wrong
            pass
    return parse_record(raw, signature, max_blob_size=max_blob_size)


def _canonical(keys: Iterable[str]) -> tuple[str, ...]:
    """Text keys under 24 bytes in canonical CBOR order: their encoding is one head
    byte then the UTF-8 bytes, so shorter first, then bytewise."""
    return tuple(sorted(keys, key=lambda k: (len(k.encode()), k.encode())))


# Every key order a valid record's map can have in canonical CBOR: one per kind and
# set of optional fields present (what _record_of lets through), and the blob's.
_KEY_ORDERS = frozenset(
    _canonical(_REQUIRED[kind] | set(optional))
    for kind in KINDS
    for optional in ((), ("peer",), ("dev",), ("peer", "dev"))
)
_BLOB_ORDER = _canonical(("sha256", "size", "name", "mime"))


def _canonical_order(fields: dict[str, Any]) -> bool:
    """The keys of a map _record_of accepted are in canonical CBOR order."""
    return tuple(fields) in _KEY_ORDERS


def _record_of(raw: bytes, signature: bytes, fields: Any, max_blob_size: int) -> Record:
    """The field checks of a decoded record."""
    if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise RecordRejected("record must be a CBOR map with text keys")
    kind = fields.get("kind")
    if kind not in KINDS:
        raise RecordRejected(f"unknown record kind {kind!r}")
    required = _REQUIRED[kind]
    missing = required - fields.keys()
    if missing:
        raise RecordRejected(f"{kind} record lacks {', '.join(sorted(missing))}")
    unknown = fields.keys() - required - _OPTIONAL
    if unknown:
        raise RecordRejected(f"{kind} record has unknown fields {', '.join(sorted(unknown))}")
    # type() check: True == 1 in Python, but a boolean is not version 1.
    if type(fields["v"]) is not int or fields["v"] != RECORD_VERSION:
        raise RecordRejected(f"unsupported record version {fields['v']!r}")
    direction = fields.get("dir")
    if "dir" in required and direction not in ("in", "out"):
        raise RecordRejected("field 'dir' must be 'in' or 'out'")
    receipt = fields.get("receipt")
    if kind == "receipt" and receipt not in ("delivered", "read"):
        raise RecordRejected("field 'receipt' must be 'delivered' or 'read'")
    if "dev" in fields:
        # Not stored apart, but signed and archived as is: keep it a bounded text.
        _text(fields, "dev", MAX_ID_CHARS)
    return Record(
        raw=raw,
        signature=signature,
        kind=kind,
        client_id=_text(fields, "id", MAX_ID_CHARS),
        conversation=_text(fields, "conv", MAX_ID_CHARS),
        peer=_text(fields, "peer", MAX_NAME_CHARS, allow_empty=True) if "peer" in fields else "",
        direction=direction if isinstance(direction, str) else None,
        sender=_text(fields, "from", MAX_NAME_CHARS),
        sent_at=_int(fields, "at", 0, 2**53),
        text=_text(fields, "text", MAX_TEXT_CHARS, allow_empty=True) if "text" in fields else None,
        ref=_text(fields, "ref", MAX_ID_CHARS) if "ref" in fields else None,
        receipt=receipt if isinstance(receipt, str) else None,
        blob=_blob(fields["blob"], max_blob_size) if "blob" in fields else None,
    )


def text_span(record: Record) -> tuple[int, int] | None:
    """Where the message text sits in the signed bytes: (1-based byte position, length).

    The archive stores the text once, inside `records.body` (schema 8); SQL reads it
    back with `substr(body, position, length)` (schema.MESSAGE_TEXT). Any occurrence
    of the text's UTF-8 bytes in the record is the same bytes, so the first one will
    do; the record holds its own text, so one is always found.
    """
    if record.text is None:
        return None
    encoded = record.text.encode()
    at = record.raw.find(encoded)
    if at < 0:  # cannot happen for a parsed record; the caller then keeps the text itself
        return None
    return at + 1, len(encoded)


def verify_record_signature(record: Record, device_key: bytes) -> None:
    """Check the device's Ed25519 signature; raise RecordRejected if it fails."""
    try:
        VerifyKey(device_key).verify(signed_message(record), record.signature)
    except (BadSignatureError, ValueError) as exc:
        raise RecordRejected("record signature does not verify with the device key") from exc


def signed_message(record: Record) -> bytes:
    """The exact bytes the device's signature covers: the context, then the record."""
    return RECORD_SIGNING_CONTEXT + record.raw


def encode_record(fields: dict[str, Any]) -> bytes:
    """Canonical CBOR bytes of a record (used by the reference client and tests)."""
    return cbor2.dumps(fields, canonical=True)


def leaf_data(kind: str, content_sha256: bytes, at_ms: int) -> bytes:
    """What a log leaf commits to: a hash of the content, never the content.

    Canonical CBOR array [1, kind, sha256(content), at_ms]. Destroying the
    content later leaves this, so the Merkle tree still verifies.
    """
    return cbor2.dumps([1, kind, content_sha256, at_ms], canonical=True)


def sign_record(signing_key: SigningKey, fields: dict[str, Any]) -> tuple[bytes, bytes]:
    """Encode and sign a record as a phone does: returns (record bytes, signature)."""
    raw = encode_record(fields)
    return raw, signing_key.sign(RECORD_SIGNING_CONTEXT + raw).signature
