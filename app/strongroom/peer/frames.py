"""Frames: the messages phones and the box exchange inside the Noise channel.

A frame is a deterministic (canonical) CBOR map with exactly three keys::

    {"t": type (text), "id": request id (uint), "b": body (map)}

A reply carries the id of the request it answers; frames the box sends on
its own (mail delivery, delivery notices) carry id 0. Every body is checked
field by field against the schema of its type *and direction* below: input
is hostile until proven otherwise. `decode_frame` raises only FrameError.
docs/protocol.md is the normative description of every body.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import cbor2

from strongroom.archive.record import MAX_RECORD_BYTES
from strongroom.cbor_check import CborRejected, check_cbor
from strongroom.peer.request_id import MAX_REQUEST_ID, readable_request_id
from strongroom.proof.sth import SignedTreeHead

BLOB_PIECE_BYTES = 65_280  # a blob_chunk / blob_data frame fits one Noise message
MAX_MAIL_PAYLOAD = 64 * 1024
MAX_TEXT = 256
MAX_HISTORY_ITEMS = 1000


class Direction(StrEnum):
    TO_BOX = "to_box"
    TO_PHONE = "to_phone"


class ErrorCode(StrEnum):
    """Codes of `error` frames. After an error frame the session continues, unless closed."""

    MALFORMED = "malformed"  # the frame is not valid CBOR or its body breaks its schema
    UNKNOWN_TYPE = "unknown-type"  # a frame type this box does not know
    NOT_PAIRED = "not-paired"  # the device must pair before this frame
    REJECTED = "rejected"  # a record failed validation or its signature
    STORAGE_FULL = "storage-full"  # the box's disk is full: nothing written, retry later
    UNAVAILABLE = "unavailable"  # the archive is not accepting writes right now
    PAIRING_REFUSED = "pairing-refused"  # `reason` says why (a pairing.Refusal value)
    UNKNOWN_RECIPIENT = "unknown-recipient"  # mail for an owner/device the box does not know
    BAD_OFFSET = "bad-offset"  # blob_chunk at another offset than the upload's
    HASH_MISMATCH = "hash-mismatch"  # the uploaded bytes do not hash to the announced SHA-256
    TOO_LARGE = "too-large"  # above a configured limit (attachment size, frame size)
    NO_UPLOAD = "no-upload"  # blob_chunk / blob_end without a blob_begin
    BUSY = "busy"  # the same blob is being uploaded on another connection
    NOT_FOUND = "not-found"  # no such blob (or not one of this owner's)
    REVOKED = "revoked"  # this device was revoked; the connection closes
    INTERNAL = "internal"  # a bug on the box; the request may be retried


class FrameError(Exception):
    """A frame that cannot be accepted; `code` says why and `request_id` echoes it if known."""

    def __init__(self, code: ErrorCode, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Frame:
    type: str
    id: int = 0
    body: Mapping[str, Any] = field(default_factory=dict)
    # True when `body` and every map in it already list their keys in canonical
    # order (see `record_ack`): encoding then skips cbor2's sorting, which costs
    # twice the rest of the encoding. Not part of the frame's value.
    presorted: bool = field(default=False, compare=False)


# -- field validators ----------------------------------------------------------------------

Check = Callable[[Any], bool]


def uint(limit: int = 2**63 - 1) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit


def text(low: int = 0, high: int = MAX_TEXT) -> Check:
    return lambda v: isinstance(v, str) and low <= len(v) <= high and "\x00" not in v


def data(low: int = 0, high: int = 32) -> Check:
    return lambda v: isinstance(v, bytes) and low <= len(v) <= high


def one_of(*values: str) -> Check:
    return lambda v: isinstance(v, str) and v in values


def boolean(v: Any) -> bool:
    return isinstance(v, bool)


def list_of(item: Check, high: int) -> Check:
    return lambda v: isinstance(v, list) and len(v) <= high and all(item(x) for x in v)


def shape(required: Mapping[str, Check], optional: Mapping[str, Check] | None = None) -> Check:
    """A map with exactly the required keys, maybe some optional ones, each value checked."""
    checks = {**(optional or {}), **required}
    needed = frozenset(required)
    allowed = frozenset(checks)

    def check(v: Any) -> bool:
        if not isinstance(v, dict):
            return False
        keys = v.keys()
        # Keys that are not text are never in `allowed`, so this also rejects them.
        if not needed <= keys or not keys <= allowed:
            return False
        return all(checks[k](x) for k, x in v.items())

    return check


bytes16, bytes32, bytes64 = data(16, 16), data(32, 32), data(64, 64)
hex32 = text(64, 64)
TREE_HEAD = shape(
    {"tree_size": uint(), "timestamp_ms": uint(), "root_hash": hex32, "signature": text(128, 128)}
)
LIMITS = shape(
    {
        "max_frame_bytes": uint(),
        "max_in_flight": uint(),
        "max_attachment_bytes": uint(),
        "idle_timeout_ms": uint(),
        "blob_piece_bytes": uint(),
    }
)
HISTORY_ITEM = shape(
    {"record": data(1, MAX_RECORD_BYTES), "sig": bytes64, "log_index": uint(), "device": uint()},
    # Boxes since the history proofs: the leaf's time and the inclusion proof.
    {"at": uint(), "proof": list_of(bytes32, 64)},
)
# Since consistency proofs (§6.3): the head the phone saw last, and the proof.
KNOWN = {"known": uint()}
CONSISTENCY = shape({"size": uint(), "proof": list_of(bytes32, 128)})
# The key of each device a history page's items name (§8: the phone checks signatures).
DEVICE_KEY = shape({"device": uint(), "sign_key": bytes32})
_PIECE = data(0, BLOB_PIECE_BYTES)
_CAPS = list_of(text(1, 32), 16)

Schema = tuple[Mapping[str, Check], Mapping[str, Check]]

# (direction, type) -> (required fields, optional fields)
SCHEMAS: dict[tuple[Direction, str], Schema] = {
    (Direction.TO_BOX, "hello"): ({"name": text(0, 64), "app": text(0, 64), "caps": _CAPS}, {}),
    (Direction.TO_PHONE, "hello"): (
        {
            "box": text(0, 64),
            "fingerprint": text(1, 64),
            "caps": _CAPS,
            "limits": LIMITS,
            "device": uint(),
            "owner": text(1, 128),
        },
        {},
    ),
    (Direction.TO_PHONE, "reveal"): ({"nonce": bytes32}, {}),
    (Direction.TO_BOX, "pair"): (
        {"name": text(1, 64), "owner": text(1, 128), "sign_key": bytes32, "sig": bytes64},
        {},
    ),
    (Direction.TO_PHONE, "paired"): (
        {
            "device_id": uint(),
            "owner": text(1, 128),
            "fingerprint": text(1, 64),
            "sign_key": bytes32,
            "tree_head": TREE_HEAD,
        },
        # Remote reach: the onion address and this phone's x25519 client-auth key.
        {"reach": shape({"onion": text(62, 62), "auth": text(52, 52)})},
    ),
    # Remote reach refresh (capability "reach", protocol.md §12.2): the phone asks for the
    # box's current onion, naming the public half of the onion-auth key it holds, if any.
    (Direction.TO_BOX, "reach"): ({}, {"auth_pub": text(52, 52)}),
    (Direction.TO_PHONE, "reach"): (
        {"on": boolean},
        {"onion": text(62, 62), "auth": text(52, 52)},
    ),
    # The box's reach changed (turned on or off, new address): ask again with `reach`.
    (Direction.TO_PHONE, "reach_changed"): ({}, {}),
    (Direction.TO_BOX, "push"): ({"record": data(1, MAX_RECORD_BYTES), "sig": bytes64}, KNOWN),
    (Direction.TO_PHONE, "ack"): (
        {"kind": one_of("record", "blob", "mail"), "ref": data(16, 32)},
        {
            "log_index": uint(),
            "at": uint(),
            "tree_head": TREE_HEAD,
            "proof": list_of(bytes32, 64),
            "duplicate": boolean,
            "consistency": CONSISTENCY,
        },
    ),
    (Direction.TO_BOX, "mail"): (
        {"mail_id": bytes16, "to": text(1, 128), "payload": data(0, MAX_MAIL_PAYLOAD)},
        {"device": uint()},
    ),
    (Direction.TO_PHONE, "mail"): (
        {
            "mail_id": bytes16,
            "from": text(1, 128),
            "device": uint(),
            "at": uint(),
            "payload": data(0, MAX_MAIL_PAYLOAD),
        },
        {},
    ),
    (Direction.TO_BOX, "mail_ack"): ({"mail_id": bytes16}, {}),
    (Direction.TO_PHONE, "mail_ack"): (
        {"mail_id": bytes16, "device": uint(), "at": uint()},
        {},
    ),
    (Direction.TO_BOX, "history"): (
        {"cursor": uint()},
        {"limit": uint(MAX_HISTORY_ITEMS), **KNOWN},
    ),
    (Direction.TO_PHONE, "history_page"): (
        {
            "items": list_of(HISTORY_ITEM, MAX_HISTORY_ITEMS),
            "cursor": uint(),
            "done": boolean,
        },
        {
            "tree_head": TREE_HEAD,
            "devices": list_of(DEVICE_KEY, MAX_HISTORY_ITEMS),
            "consistency": CONSISTENCY,
        },
    ),
    (Direction.TO_BOX, "blob_begin"): ({"sha256": bytes32, "size": uint()}, KNOWN),
    (Direction.TO_PHONE, "blob_status"): (
        {"sha256": bytes32, "offset": uint(), "size": uint()},
        {},
    ),
    (Direction.TO_BOX, "blob_chunk"): ({"offset": uint(), "data": _PIECE}, {}),
    (Direction.TO_BOX, "blob_end"): ({"sha256": bytes32}, KNOWN),
    (Direction.TO_BOX, "blob_get"): ({"sha256": bytes32, "offset": uint()}, {}),
    (Direction.TO_PHONE, "blob_data"): (
        {"offset": uint(), "data": _PIECE, "end": boolean},
        {},
    ),
    (Direction.TO_BOX, "ping"): ({}, {}),
    (Direction.TO_PHONE, "ping"): ({}, {}),
    (Direction.TO_BOX, "pong"): ({}, {}),
    (Direction.TO_PHONE, "pong"): ({}, {}),
    (Direction.TO_BOX, "error"): ({"code": text(1, 64), "message": text(0, 1024)}, {}),
    (Direction.TO_PHONE, "error"): (
        {"code": text(1, 64), "message": text(0, 1024)},
        {"reason": text(1, 64)},
    ),
}

FRAME_TYPES = frozenset(t for _, t in SCHEMAS)
_BODY_CHECKS: dict[tuple[Direction, str], Check] = {
    key: shape(*schema) for key, schema in SCHEMAS.items()
}
_REQUEST_ID = uint(MAX_REQUEST_ID)


def encode_frame(frame: Frame) -> bytes:
    """Canonical CBOR bytes of a frame (not validated: the sender builds valid frames)."""
    if frame.presorted:
        # "b" < "t" < "id": canonical order is length first, then bytes.
        return cbor2.dumps({"b": frame.body, "t": frame.type, "id": frame.id})
    return cbor2.dumps({"t": frame.type, "id": frame.id, "b": dict(frame.body)}, canonical=True)


def record_ack(
    request_id: int,
    *,
    kind: str,
    ref: bytes,
    log_index: int,
    at: int,
    tree_head: SignedTreeHead,
    proof: Sequence[bytes],
    duplicate: bool,
) -> Frame:
    """The `ack` of a logged record or blob, its maps built in canonical key order.

    The box sends one per push, so it is worth encoding without sorting: the
    keys below are written in canonical order (shorter first, then bytewise),
    and a test checks the bytes against cbor2's canonical encoding.
    """
    body = {
        "at": at,
        "ref": ref,
        "kind": kind,
        "proof": list(proof),
        "duplicate": duplicate,
        "log_index": log_index,
        "tree_head": tree_head.to_dict(),  # its keys are in canonical order too
    }
    return Frame("ack", request_id, body, presorted=True)


def decode_frame(raw: bytes, direction: Direction, *, max_bytes: int) -> Frame:
    """Parse and validate one frame travelling in `direction`; raise FrameError otherwise."""
    # Errors about a frame carry its id whenever it can be read, even from bytes the
    # strict decoder refuses (protocol.md §5; see request_id.py).
    if len(raw) > max_bytes:
        message = f"frame of {len(raw)} bytes exceeds {max_bytes}"
        raise FrameError(ErrorCode.TOO_LARGE, message, readable_request_id(raw))
    try:
        # The pre-check also proves the encoding canonical (shortest heads, ordered
        # unique keys), so no re-encoding is needed to compare.
        check_cbor(raw)
        value = cbor2.loads(raw)
    except CborRejected as exc:
        message = "frame is not in canonical CBOR" if exc.canonical else f"not a frame: {exc}"
        raise FrameError(ErrorCode.MALFORMED, message, readable_request_id(raw)) from None
    except (cbor2.CBORError, ValueError) as exc:
        message = f"not a frame: {exc}"
        raise FrameError(ErrorCode.MALFORMED, message, readable_request_id(raw)) from None
    if not isinstance(value, dict):
        raise FrameError(ErrorCode.MALFORMED, "a frame is a map of exactly t, id and b")
    request_id: Any = value.get("id")  # an int once the next line has checked it
    if not _REQUEST_ID(request_id):
        raise FrameError(ErrorCode.MALFORMED, "id must be an unsigned integer below 2^53")
    if value.keys() != {"t", "id", "b"}:
        raise FrameError(ErrorCode.MALFORMED, "a frame is a map of exactly t, id and b", request_id)
    frame_type, body = value["t"], value["b"]
    if not isinstance(frame_type, str) or not isinstance(body, dict):
        raise FrameError(ErrorCode.MALFORMED, "t must be text and b a map", request_id)
    check = _BODY_CHECKS.get((direction, frame_type))
    if check is None:
        raise FrameError(
            ErrorCode.UNKNOWN_TYPE, f"unknown frame type {frame_type[:32]!r}", request_id
        )
    if not check(body):
        raise FrameError(ErrorCode.MALFORMED, f"invalid {frame_type} body", request_id)
    return Frame(frame_type, request_id, body)


def error_frame(
    code: ErrorCode, message: str, request_id: int = 0, *, reason: str | None = None
) -> Frame:
    body: dict[str, Any] = {"code": code.value, "message": message[:1024]}
    if reason is not None:
        body["reason"] = reason
    return Frame("error", request_id, body)


class CloseCode(IntEnum):
    """WebSocket close codes the box uses (the reason text says more)."""

    GOING_AWAY = 1001  # the box is shutting down
    PROTOCOL = 4400  # bad selector, failed handshake, forged/reordered transport message
    UNKNOWN_DEVICE = 4401  # IK from a key that was never paired
    REFUSED = 4403  # revoked device, pairing refused, no QR pairing open
    TIMEOUT = 4408  # handshake or idle timeout
    TOO_MANY = 4429  # connection cap for this device reached
    UNAVAILABLE = 4503  # the archive cannot take writes (storage gone)
