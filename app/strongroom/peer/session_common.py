"""What the parts of a peer session share: its states, the box's identity, errors, acks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from strongroom.archive.committer import Committed, CommitterStopped
from strongroom.archive.errors import ArchiveError, BlobError, RecordRejected, StorageFull
from strongroom.peer import ingest, mailbox
from strongroom.peer.actions import Action, Send
from strongroom.peer.frames import ErrorCode, error_frame, record_ack


class State(Enum):
    PAIRING = "pairing"
    READY = "ready"
    CLOSED = "closed"


@dataclass(frozen=True)
class BoxInfo:
    name: str
    fingerprint: str
    sign_public: bytes
    # Remote reach (strongroom.reach): device id -> {"onion", "auth"} for `paired`, or None.
    reach_offer: Callable[[int], Mapping[str, str] | None] | None = None
    # Remote reach refresh: (device id, public half of the phone's key or None) -> the
    # `reach` reply body. None: this box has no remote reach (the reply says off).
    reach_refresh: Callable[[int, str | None], Awaitable[Mapping[str, Any]]] | None = None


def error_for(exc: BaseException) -> tuple[ErrorCode, str]:
    if isinstance(exc, mailbox.UnknownRecipient):
        return ErrorCode.UNKNOWN_RECIPIENT, str(exc)
    if isinstance(exc, RecordRejected):
        return ErrorCode.REJECTED, str(exc)
    if isinstance(exc, StorageFull):
        return ErrorCode.STORAGE_FULL, "the box's disk is full; retry later"
    if isinstance(exc, CommitterStopped):
        return ErrorCode.UNAVAILABLE, "the archive is not accepting writes"
    if isinstance(exc, BlobError):
        return ErrorCode.HASH_MISMATCH, str(exc)
    if isinstance(exc, ArchiveError):
        return ErrorCode.INTERNAL, str(exc)
    return ErrorCode.INTERNAL, "internal error"


def error(code: ErrorCode, message: str, request_id: int, **kw: Any) -> Send:
    return Send(error_frame(code, message, request_id, **kw))


def logged(request_id: int, kind: str, result: Committed | Exception) -> list[Action]:
    """The ack of a record or blob once its commit is durable (or the error)."""
    if isinstance(result, Exception):
        code, message = error_for(result)
        return [error(code, message, request_id)]
    entry: ingest.Logged = result.result
    if result.tree_head is None or result.inclusion_proof is None:
        return [error(ErrorCode.INTERNAL, "no proof for a logged entry", request_id)]
    ack = record_ack(
        request_id,
        kind=kind,
        ref=entry.content_sha256,
        log_index=entry.log_index,
        at=entry.at,
        tree_head=result.tree_head,
        proof=result.inclusion_proof,
        duplicate=entry.duplicate,
    )
    return [Send(ack)]
