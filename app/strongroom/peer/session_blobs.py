"""Attachments in a peer session (protocol.md §9): the upload's bookkeeping per frame.

Sans-I/O: the bytes themselves go through the Upload* actions to the connection's
UploadDriver (uploads.py); downloads are a StreamBlob action.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strongroom.archive.blobs import BlobLocation
from strongroom.peer import history, ingest
from strongroom.peer.actions import (
    Action,
    BlobStored,
    Commit,
    Query,
    Send,
    StreamBlob,
    UploadAbort,
    UploadFailed,
    UploadFinish,
    UploadOpen,
    UploadOpened,
    UploadWrite,
)
from strongroom.peer.frames import ErrorCode, Frame
from strongroom.peer.session_common import error, logged

if TYPE_CHECKING:
    from strongroom.peer.session import PeerSession


@dataclass
class _Upload:
    sha256: bytes
    size: int
    offset: int
    failed: bool = False


class BlobFlow:
    def __init__(self, session: PeerSession) -> None:
        self._session = session
        self.upload: _Upload | None = None

    def abort(self) -> list[Action]:
        """The session ends: put a partial upload away (kept for resuming)."""
        if self.upload is None:
            return []
        self.upload = None
        return [UploadAbort()]

    def begin(self, frame: Frame) -> list[Action]:
        sha256: bytes = frame.body["sha256"]
        size: int = frame.body["size"]
        if size > self._session.limits.max_attachment_bytes:
            return [
                error(
                    ErrorCode.TOO_LARGE,
                    f"attachments are limited to {self._session.limits.max_attachment_bytes} bytes",
                    frame.id,
                )
            ]
        actions: list[Action] = []
        if self.upload is not None:
            actions.append(UploadAbort())
            self.upload = None

        def opened(result: BlobStored | UploadOpened | UploadFailed) -> list[Action]:
            if isinstance(result, UploadFailed):
                return [error(ErrorCode(result.code), result.message, frame.id)]
            if isinstance(result, BlobStored):
                op = ingest.existing_blob(sha256)
                acked = functools.partial(logged, frame.id, "blob")
                return [Commit(op, ingest.log_index_of, acked, frame.id)]
            self.upload = _Upload(sha256, size, result.offset)
            body = {"sha256": sha256, "offset": result.offset, "size": size}
            return [Send(Frame("blob_status", frame.id, body))]

        return [*actions, UploadOpen(sha256, size, opened)]

    def chunk(self, frame: Frame) -> list[Action]:
        upload = self.upload
        if upload is None or upload.failed:
            return [error(ErrorCode.NO_UPLOAD, "send blob_begin first", frame.id)]
        offset: int = frame.body["offset"]
        data: bytes = frame.body["data"]
        if offset != upload.offset:
            return [
                error(
                    ErrorCode.BAD_OFFSET, f"expected offset {upload.offset}, got {offset}", frame.id
                )
            ]
        if offset + len(data) > upload.size:
            return [error(ErrorCode.TOO_LARGE, "more bytes than announced", frame.id)]
        upload.offset += len(data)

        def failed(result: UploadFailed) -> list[Action]:
            upload.failed = True
            return [error(ErrorCode(result.code), result.message, frame.id)]

        return [UploadWrite(data, failed)]

    def end(self, frame: Frame) -> list[Action]:
        upload = self.upload
        if upload is None or upload.failed or upload.sha256 != frame.body["sha256"]:
            return [error(ErrorCode.NO_UPLOAD, "no such upload on this connection", frame.id)]
        if upload.offset != upload.size:
            return [
                error(
                    ErrorCode.BAD_OFFSET,
                    f"only {upload.offset} of {upload.size} bytes received",
                    frame.id,
                )
            ]
        self.upload = None

        def finished(result: BlobLocation | UploadFailed) -> list[Action]:
            if isinstance(result, UploadFailed):
                return [error(ErrorCode(result.code), result.message, frame.id)]
            op = ingest.register_blob(upload.sha256, upload.size, result)
            acked = functools.partial(logged, frame.id, "blob")
            return [Commit(op, ingest.log_index_of, acked, frame.id)]

        return [UploadFinish(finished)]

    def get(self, frame: Frame) -> list[Action]:
        assert self._session.device is not None
        owner = self._session.device.owner
        sha256: bytes = frame.body["sha256"]
        offset: int = frame.body["offset"]

        def read(conn: Any) -> history.StoredBlob | None:
            if not history.owner_has_blob(conn, owner, sha256):
                return None
            return history.stored_blob(conn, sha256)

        def found(blob: history.StoredBlob | None) -> list[Action]:
            if blob is None:
                return [error(ErrorCode.NOT_FOUND, "no such attachment", frame.id)]
            if offset > blob.size:
                return [error(ErrorCode.BAD_OFFSET, "offset beyond the blob", frame.id)]
            return [StreamBlob(frame.id, blob.location, blob.size, offset)]

        return [Query(read, found, frame.id)]
