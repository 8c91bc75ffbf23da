"""The box's side of one phone session after the Noise handshake, sans-I/O.

Feed it each decrypted frame (`receive`); it answers with actions (frames to
send, archive operations to commit, reads, a pairing request, blob I/O, a
close) for the network glue to run. A session starts in one of two states:

* PAIRING: the phone's static key is unknown (XX or XXpsk3). Only hello,
  ping, pong and one `pair` frame are accepted; everything else gets a
  `not-paired` error and never reaches the archive.
* READY: the phone is a paired, non-revoked device (IK, or XX/XXpsk3 with a
  known key, or a pairing just accepted in this same session).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.archive import writes
from strongroom.archive.blobs import BlobLocation
from strongroom.archive.committer import Committed, CommitterStopped
from strongroom.archive.errors import ArchiveError, BlobError, RecordRejected, StorageFull
from strongroom.archive.record import (
    Record,
    parse_record,
    signed_message,
    verify_record_signature,
)
from strongroom.config import Limits
from strongroom.pairing.codes import committed_comparison_code
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome
from strongroom.peer import history, ingest, mailbox
from strongroom.peer.actions import (
    Action,
    AskGate,
    BlobStored,
    CheckSignature,
    Close,
    Commit,
    DeviceSeen,
    Query,
    Send,
    StreamBlob,
    UploadAbort,
    UploadFailed,
    UploadFinish,
    UploadOpen,
    UploadOpened,
    UploadWrite,
    WakeMail,
    WakeNotices,
)
from strongroom.peer.frames import (
    BLOB_PIECE_BYTES,
    CloseCode,
    Direction,
    ErrorCode,
    Frame,
    FrameError,
    decode_frame,
    error_frame,
    record_ack,
)
from strongroom.peer.handshake import HandshakeKind, pair_message
from strongroom.peer.history import Device

CAPABILITIES = ["blobs", "bundles", "fragments", "history", "mail"]
CodeFunction = Callable[[bytes, bytes, bytes], str]  # (handshake hash, phone nonce, box nonce)
MAIL_WINDOW = 32  # deliveries (and notices) sent but not yet acknowledged, per session


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


@dataclass
class _Upload:
    sha256: bytes
    size: int
    offset: int
    failed: bool = False


def _error_for(exc: BaseException) -> tuple[ErrorCode, str]:
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


class PeerSession:
    def __init__(
        self,
        *,
        box: BoxInfo,
        limits: Limits,
        kind: HandshakeKind,
        remote_static: bytes,
        handshake_hash: bytes,
        device: Device | None,
        code_nonces: tuple[bytes, bytes] | None = None,
        comparison_code: CodeFunction = committed_comparison_code,
        check_signatures_apart: bool = False,
    ) -> None:
        """`check_signatures_apart`: a push yields a CheckSignature action (for the glue
        to run off the event loop) instead of being checked inside `receive`."""
        self.box = box
        self.limits = limits
        self.kind = kind
        self.remote_static = remote_static
        self.handshake_hash = handshake_hash
        self.device = device
        self._code = comparison_code
        self._check_signatures_apart = check_signatures_apart
        self._code_nonces = code_nonces  # (phone's, box's): XX and XXpsk3 only
        self.state = State.READY if device is not None else State.PAIRING
        self.pairing_pending = False
        self.peer_bundles = False  # the phone listed "bundles" in its hello caps
        self._upload: _Upload | None = None
        self._mail_out: set[bytes] = set()  # delivered in this session, not yet acknowledged
        self._notices_out: set[bytes] = set()
        self._mail_query = False
        self._notice_query = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Waiting on the box (pairing decision): idle timeouts do not apply."""
        return self.pairing_pending

    def start(self) -> list[Action]:
        """Actions when the transport opens.

        After XX/XXpsk3 the box first reveals its comparison-code nonce (it committed
        to it in handshake message 2); a ready device then gets its waiting mail.
        """
        actions: list[Action] = []
        if self._code_nonces is not None:
            actions.append(Send(Frame("reveal", 0, {"nonce": self._code_nonces[1]})))
        if self.state is State.READY:
            actions += self._on_ready()
        return actions

    def _on_ready(self) -> list[Action]:
        assert self.device is not None
        return [DeviceSeen(self.device.id), *self.wake_mail(), *self.wake_notices()]

    def revoke(self) -> list[Action]:
        """The device was revoked: refuse everything from now on and close."""
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        abort: list[Action] = [UploadAbort()] if self._upload is not None else []
        return [
            *abort,
            Send(error_frame(ErrorCode.REVOKED, "this device was revoked")),
            Close(CloseCode.REFUSED, "revoked"),
        ]

    def closed(self) -> list[Action]:
        """The connection went away: keep a partial upload for resuming."""
        self.state = State.CLOSED
        if self._upload is not None:
            self._upload = None
            return [UploadAbort()]
        return []

    # -- input -------------------------------------------------------------------------------

    def receive(self, raw: bytes) -> list[Action]:
        """One whole decrypted frame from the phone."""
        if self.state is State.CLOSED:
            return []
        try:
            frame = decode_frame(raw, Direction.TO_BOX, max_bytes=self.limits.max_frame_bytes)
        except FrameError as exc:
            return [Send(error_frame(exc.code, exc.message, exc.request_id))]
        if frame.type == "ping":
            return [Send(Frame("pong", frame.id))]
        if frame.type in ("pong", "error"):
            return []
        if frame.type == "hello":
            # From now on the glue may bundle frames to a phone that reads bundles.
            self.peer_bundles = "bundles" in frame.body["caps"]
            return [Send(self._hello_reply(frame.id))]
        if self.state is State.PAIRING:
            if frame.type == "pair":
                return self._pair(frame)
            return [self._error(ErrorCode.NOT_PAIRED, "pair this device first", frame.id)]
        handler = self._HANDLERS.get(frame.type)
        if handler is None:
            return [self._error(ErrorCode.MALFORMED, f"{frame.type} is not expected now", frame.id)]
        return handler(self, frame)

    @staticmethod
    def _error(code: ErrorCode, message: str, request_id: int, **kw: Any) -> Send:
        return Send(error_frame(code, message, request_id, **kw))

    def _hello_reply(self, request_id: int) -> Frame:
        limits = self.limits
        body: dict[str, Any] = {
            "box": self.box.name,
            "fingerprint": self.box.fingerprint,
            "caps": CAPABILITIES,
            "limits": {
                "max_frame_bytes": limits.max_frame_bytes,
                "max_in_flight": limits.max_in_flight_frames,
                "max_attachment_bytes": limits.max_attachment_bytes,
                "idle_timeout_ms": int(limits.idle_timeout_s * 1000),
                "blob_piece_bytes": BLOB_PIECE_BYTES,
            },
        }
        if self.device is not None:
            body["device"] = self.device.id
            body["owner"] = self.device.owner
        return Frame("hello", request_id, body)

    # -- pairing -----------------------------------------------------------------------------

    def _pair(self, frame: Frame) -> list[Action]:
        if self.pairing_pending:
            return [self._error(ErrorCode.BUSY, "a pairing request is already pending", frame.id)]
        if self._code_nonces is None:
            return [self._error(ErrorCode.NOT_PAIRED, "pair over XX or XXpsk3", frame.id)]
        body = frame.body
        try:
            VerifyKey(body["sign_key"]).verify(pair_message(self.handshake_hash), body["sig"])
        except (BadSignatureError, ValueError):
            return [
                self._error(ErrorCode.REJECTED, "pair signature does not verify", frame.id),
                Close(CloseCode.REFUSED, "bad pair signature"),
            ]
        method = PairingMethod.QR if self.kind is HandshakeKind.XXPSK3 else PairingMethod.BUTTON
        attempt = PairingAttempt(
            method=method,
            noise_key=self.remote_static,
            sign_key=body["sign_key"],
            device_name=body["name"],
            owner=body["owner"],
            handshake_hash=self.handshake_hash,
            comparison_code=self._code(self.handshake_hash, *self._code_nonces),
        )
        self.pairing_pending = True
        return [AskGate(attempt, lambda outcome: self._pair_decided(frame.id, attempt, outcome))]

    def _refuse(self, request_id: int, reason: str) -> list[Action]:
        self.pairing_pending = False
        self.state = State.CLOSED
        return [
            self._error(ErrorCode.PAIRING_REFUSED, "pairing refused", request_id, reason=reason),
            Close(CloseCode.REFUSED, f"pairing refused: {reason}"),
        ]

    def _pair_decided(
        self, request_id: int, attempt: PairingAttempt, outcome: PairingOutcome
    ) -> list[Action]:
        if self.state is State.CLOSED:
            return []
        if not outcome.accepted:
            reason = outcome.refusal.value if outcome.refusal is not None else "refused"
            return self._refuse(request_id, reason)
        device = writes.NewDevice(
            sign_key=attempt.sign_key,
            noise_key=attempt.noise_key,
            name=attempt.device_name,
            owner=attempt.owner,
            role="staff",
            method=attempt.method.value,
        )

        def registered(result: Committed | Exception) -> list[Action]:
            if isinstance(result, RecordRejected):
                return self._refuse(request_id, "revoked")
            if isinstance(result, Exception):
                self.pairing_pending = False
                code, message = _error_for(result)
                return [self._error(code, message, request_id)]
            return self._paired(request_id, attempt, int(result.result), result)

        return [Commit(writes.add_device(device), None, registered)]

    def _paired(
        self, request_id: int, attempt: PairingAttempt, device_id: int, result: Committed
    ) -> list[Action]:
        self.pairing_pending = False
        if self.state is State.CLOSED:
            return []
        self.device = Device(
            device_id,
            attempt.owner,
            attempt.device_name,
            attempt.sign_key,
            attempt.noise_key,
            False,
        )
        self.state = State.READY
        assert result.tree_head is not None
        body: dict[str, Any] = {
            "device_id": device_id,
            "owner": attempt.owner,
            "fingerprint": self.box.fingerprint,
            "sign_key": self.box.sign_public,
            "tree_head": result.tree_head.to_dict(),
        }
        if self.box.reach_offer is not None and (reach := self.box.reach_offer(device_id)):
            body["reach"] = dict(reach)  # remote reach on: the onion and this phone's key
        paired = Frame("paired", request_id, body)
        return [Send(paired), *self._on_ready()]

    # -- records -------------------------------------------------------------------------------

    def _push(self, frame: Frame) -> list[Action]:
        device = self.device
        assert device is not None
        try:
            record = parse_record(
                frame.body["record"],
                frame.body["sig"],
                max_blob_size=self.limits.max_attachment_bytes,
            )
            if not self._check_signatures_apart:
                verify_record_signature(record, device.sign_key)
        except RecordRejected as exc:
            return [self._error(ErrorCode.REJECTED, str(exc), frame.id)]
        if not self._check_signatures_apart:
            return [self._store(frame.id, record, device)]

        def checked(holds: bool) -> list[Action]:
            if not holds:
                message = "record signature does not verify with the device key"
                return [self._error(ErrorCode.REJECTED, message, frame.id)]
            if self.state is State.CLOSED:
                return []
            return [self._store(frame.id, record, device)]

        return [CheckSignature(device.sign_key, signed_message(record), record.signature, checked)]

    def _store(self, request_id: int, record: Record, device: Device) -> Commit:
        """Commit a record whose signature holds; the ack follows the durable commit."""
        op = ingest.push_record(record, device.id, device.owner)
        return Commit(op, ingest.log_index_of, lambda r: self._logged(request_id, "record", r))

    def _logged(self, request_id: int, kind: str, result: Committed | Exception) -> list[Action]:
        if isinstance(result, Exception):
            code, message = _error_for(result)
            return [self._error(code, message, request_id)]
        logged: ingest.Logged = result.result
        if result.tree_head is None or result.inclusion_proof is None:
            return [self._error(ErrorCode.INTERNAL, "no proof for a logged entry", request_id)]
        ack = record_ack(
            request_id,
            kind=kind,
            ref=logged.content_sha256,
            log_index=logged.log_index,
            at=logged.at,
            tree_head=result.tree_head,
            proof=result.inclusion_proof,
            duplicate=logged.duplicate,
        )
        return [Send(ack)]

    # -- mail ----------------------------------------------------------------------------------

    def _mail(self, frame: Frame) -> list[Action]:
        assert self.device is not None
        body = frame.body
        mail_id: bytes = body["mail_id"]
        device = body.get("device")
        op = mailbox.hold_mail(mail_id, self.device.id, body["to"], device, body["payload"])

        def held(result: Committed | Exception) -> list[Action]:
            if isinstance(result, Exception):
                code, message = _error_for(result)
                return [self._error(code, message, frame.id)]
            ack = Frame("ack", frame.id, {"kind": "mail", "ref": mail_id})
            return [Send(ack), WakeMail(body["to"], device)]

        return [Commit(op, None, held)]

    def _mail_ack(self, frame: Frame) -> list[Action]:
        assert self.device is not None
        mail_id: bytes = frame.body["mail_id"]

        def recorded(result: Committed | Exception) -> list[Action]:
            if isinstance(result, Exception):
                code, message = _error_for(result)
                return [self._error(code, message, frame.id)]
            actions: list[Action] = []
            outcome = result.result
            if isinstance(outcome, mailbox.Delivered):
                actions.append(WakeNotices(outcome.sender_device))
            if mail_id in self._mail_out:
                self._mail_out.discard(mail_id)
                actions += self.wake_mail()
            if mail_id in self._notices_out:
                self._notices_out.discard(mail_id)
                actions += self.wake_notices()
            return actions

        return [
            Commit(mailbox.ack_mail(mail_id, self.device.id, self.device.owner), None, recorded)
        ]

    def wake_mail(self) -> list[Action]:
        """Fetch and deliver waiting mail, keeping at most MAIL_WINDOW unacknowledged."""
        if self.state is not State.READY or self._mail_query or self.device is None:
            return []
        room = MAIL_WINDOW - len(self._mail_out)
        if room <= 0:
            return []
        self._mail_query = True
        device = self.device
        limit = room + len(self._mail_out)

        def deliver(items: list[history.MailItem]) -> list[Action]:
            self._mail_query = False
            if self.state is not State.READY:
                return []
            actions: list[Action] = []
            for item in items:
                if item.mail_id in self._mail_out or len(self._mail_out) >= MAIL_WINDOW:
                    continue
                self._mail_out.add(item.mail_id)
                body = {
                    "mail_id": item.mail_id,
                    "from": item.sender_owner,
                    "device": item.sender_device,
                    "at": item.at,
                    "payload": item.payload,
                }
                actions.append(Send(Frame("mail", 0, body)))
            return actions

        return [Query(lambda c: history.pending_mail(c, device.id, device.owner, limit), deliver)]

    def wake_notices(self) -> list[Action]:
        """Send delivery notices for this device's mail that its recipients took."""
        if self.state is not State.READY or self._notice_query or self.device is None:
            return []
        if len(self._notices_out) >= MAIL_WINDOW:
            return []
        self._notice_query = True
        device_id = self.device.id
        limit = MAIL_WINDOW + len(self._notices_out)

        def notify(items: list[history.Notice]) -> list[Action]:
            self._notice_query = False
            if self.state is not State.READY:
                return []
            actions: list[Action] = []
            for item in items:
                if item.mail_id in self._notices_out or len(self._notices_out) >= MAIL_WINDOW:
                    continue
                self._notices_out.add(item.mail_id)
                body = {"mail_id": item.mail_id, "device": item.device, "at": item.at}
                actions.append(Send(Frame("mail_ack", 0, body)))
            return actions

        return [Query(lambda c: history.pending_notices(c, device_id, limit), notify)]

    # -- history -------------------------------------------------------------------------------

    def _history(self, frame: Frame) -> list[Action]:
        assert self.device is not None
        owner = self.device.owner
        cursor: int = frame.body["cursor"]
        limit = min(
            frame.body.get("limit", self.limits.history_page_size), self.limits.history_page_size
        )
        limit = max(limit, 1)
        # Leave room in the frame for the page's own CBOR around the records.
        budget = max(self.limits.max_frame_bytes - 4096, 1)

        def page(result: history.HistoryPage) -> list[Action]:
            body: dict[str, Any] = {
                "items": result.items,
                "cursor": result.cursor,
                "done": result.done,
            }
            if result.tree_head is not None:
                body["tree_head"] = result.tree_head
            return [Send(Frame("history_page", frame.id, body))]

        return [Query(lambda c: history.history_page(c, owner, cursor, limit, budget), page)]

    # -- blobs ---------------------------------------------------------------------------------

    def _blob_begin(self, frame: Frame) -> list[Action]:
        sha256: bytes = frame.body["sha256"]
        size: int = frame.body["size"]
        if size > self.limits.max_attachment_bytes:
            return [
                self._error(
                    ErrorCode.TOO_LARGE,
                    f"attachments are limited to {self.limits.max_attachment_bytes} bytes",
                    frame.id,
                )
            ]
        actions: list[Action] = []
        if self._upload is not None:
            actions.append(UploadAbort())
            self._upload = None

        def opened(result: BlobStored | UploadOpened | UploadFailed) -> list[Action]:
            if isinstance(result, UploadFailed):
                return [self._error(ErrorCode(result.code), result.message, frame.id)]
            if isinstance(result, BlobStored):
                op = ingest.existing_blob(sha256)
                return [
                    Commit(op, ingest.log_index_of, lambda r: self._logged(frame.id, "blob", r))
                ]
            self._upload = _Upload(sha256, size, result.offset)
            body = {"sha256": sha256, "offset": result.offset, "size": size}
            return [Send(Frame("blob_status", frame.id, body))]

        return [*actions, UploadOpen(sha256, size, opened)]

    def _blob_chunk(self, frame: Frame) -> list[Action]:
        upload = self._upload
        if upload is None or upload.failed:
            return [self._error(ErrorCode.NO_UPLOAD, "send blob_begin first", frame.id)]
        offset: int = frame.body["offset"]
        data: bytes = frame.body["data"]
        if offset != upload.offset:
            return [
                self._error(
                    ErrorCode.BAD_OFFSET, f"expected offset {upload.offset}, got {offset}", frame.id
                )
            ]
        if offset + len(data) > upload.size:
            return [self._error(ErrorCode.TOO_LARGE, "more bytes than announced", frame.id)]
        upload.offset += len(data)

        def failed(result: UploadFailed) -> list[Action]:
            upload.failed = True
            return [self._error(ErrorCode(result.code), result.message, frame.id)]

        return [UploadWrite(data, failed)]

    def _blob_end(self, frame: Frame) -> list[Action]:
        upload = self._upload
        if upload is None or upload.failed or upload.sha256 != frame.body["sha256"]:
            return [self._error(ErrorCode.NO_UPLOAD, "no such upload on this connection", frame.id)]
        if upload.offset != upload.size:
            return [
                self._error(
                    ErrorCode.BAD_OFFSET,
                    f"only {upload.offset} of {upload.size} bytes received",
                    frame.id,
                )
            ]
        self._upload = None

        def finished(result: BlobLocation | UploadFailed) -> list[Action]:
            if isinstance(result, UploadFailed):
                return [self._error(ErrorCode(result.code), result.message, frame.id)]
            op = ingest.register_blob(upload.sha256, upload.size, result)
            return [Commit(op, ingest.log_index_of, lambda r: self._logged(frame.id, "blob", r))]

        return [UploadFinish(finished)]

    def _blob_get(self, frame: Frame) -> list[Action]:
        assert self.device is not None
        owner = self.device.owner
        sha256: bytes = frame.body["sha256"]
        offset: int = frame.body["offset"]

        def read(conn: Any) -> history.StoredBlob | None:
            if not history.owner_has_blob(conn, owner, sha256):
                return None
            return history.stored_blob(conn, sha256)

        def found(blob: history.StoredBlob | None) -> list[Action]:
            if blob is None:
                return [self._error(ErrorCode.NOT_FOUND, "no such attachment", frame.id)]
            if offset > blob.size:
                return [self._error(ErrorCode.BAD_OFFSET, "offset beyond the blob", frame.id)]
            return [StreamBlob(frame.id, blob.location, blob.size, offset)]

        return [Query(read, found)]

    _HANDLERS: ClassVar[dict[str, Callable[[PeerSession, Frame], list[Action]]]] = {
        "push": _push,
        "mail": _mail,
        "mail_ack": _mail_ack,
        "history": _history,
        "blob_begin": _blob_begin,
        "blob_chunk": _blob_chunk,
        "blob_end": _blob_end,
        "blob_get": _blob_get,
    }
