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

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.archive import writes
from strongroom.archive.committer import Committed
from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import (
    RECORD_SIGNING_CONTEXT,
    Record,
    parse_record,
    parse_stored_record,
    verify_record_signature,
)
from strongroom.config import Limits
from strongroom.pairing.codes import committed_comparison_code
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome
from strongroom.peer import ingest
from strongroom.peer.actions import (
    Action,
    AskGate,
    CheckSignature,
    Close,
    Commit,
    DeviceSeen,
    Send,
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
)
from strongroom.peer.handshake import HandshakeKind, pair_message
from strongroom.peer.head_chain import CAPABILITY as CONSISTENCY_CAP
from strongroom.peer.head_chain import HeadChain
from strongroom.peer.history import Device
from strongroom.peer.push_frames import read_known_frame
from strongroom.peer.session_blobs import BlobFlow
from strongroom.peer.session_common import BoxInfo, State, error, error_for, logged
from strongroom.peer.session_history import HistoryFlow
from strongroom.peer.session_mail import MailFlow
from strongroom.peer.session_reach import CAPABILITY as REACH_CAP
from strongroom.peer.session_reach import ReachFlow

__all__ = ["CAPABILITIES", "BoxInfo", "CodeFunction", "PeerSession", "State"]

CAPABILITIES = ["blobs", "bundles", "consistency", "fragments", "history", "mail", "reach"]
CodeFunction = Callable[[bytes, bytes, bytes], str]  # (handshake hash, phone nonce, box nonce)


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
        self.heads = HeadChain()  # consistency proofs for this phone (peer/head_chain.py)
        self.mail = MailFlow(self)
        self.blobs = BlobFlow(self)
        self.reach = ReachFlow(self)
        self.history = HistoryFlow(self)

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
        return [
            *self.blobs.abort(),
            Send(error_frame(ErrorCode.REVOKED, "this device was revoked")),
            Close(CloseCode.REFUSED, "revoked"),
        ]

    def closed(self) -> list[Action]:
        """The connection went away: keep a partial upload for resuming."""
        self.state = State.CLOSED
        return self.blobs.abort()

    # -- input -------------------------------------------------------------------------------

    def receive(self, raw: bytes) -> list[Action]:
        """One whole decrypted frame from the phone."""
        if self.state is State.CLOSED:
            return []
        try:
            frame = read_known_frame(raw, self.limits.max_frame_bytes) or decode_frame(
                raw, Direction.TO_BOX, max_bytes=self.limits.max_frame_bytes
            )
        except FrameError as exc:
            return [error(exc.code, exc.message, exc.request_id)]
        if frame.type == "ping":
            return [Send(Frame("pong", frame.id))]
        if frame.type in ("pong", "error"):
            return []
        if frame.type == "hello":
            # From now on the glue may bundle frames to a phone that reads bundles.
            self.peer_bundles = "bundles" in frame.body["caps"]
            self.heads.want(CONSISTENCY_CAP in frame.body["caps"])
            self.reach.wanted = REACH_CAP in frame.body["caps"]
            return [Send(self._hello_reply(frame.id))]
        if self.state is State.PAIRING:
            if frame.type == "pair":
                return self._pair(frame)
            return [error(ErrorCode.NOT_PAIRED, "pair this device first", frame.id)]
        if "known" in frame.body:  # the phone's last head, for its consistency proofs
            self.heads.offer_known(frame.body["known"])
        handler = self._HANDLERS.get(frame.type)
        if handler is None:
            return [error(ErrorCode.MALFORMED, f"{frame.type} is not expected now", frame.id)]
        return handler(self, frame)

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
            return [error(ErrorCode.BUSY, "a pairing request is already pending", frame.id)]
        if self._code_nonces is None:
            return [error(ErrorCode.NOT_PAIRED, "pair over XX or XXpsk3", frame.id)]
        body = frame.body
        try:
            VerifyKey(body["sign_key"]).verify(pair_message(self.handshake_hash), body["sig"])
        except (BadSignatureError, ValueError):
            return [
                error(ErrorCode.REJECTED, "pair signature does not verify", frame.id),
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
        decided = functools.partial(self._pair_decided, frame.id, attempt)
        return [AskGate(attempt, decided, frame.id)]

    def _refuse(self, request_id: int, reason: str) -> list[Action]:
        self.pairing_pending = False
        self.state = State.CLOSED
        return [
            error(ErrorCode.PAIRING_REFUSED, "pairing refused", request_id, reason=reason),
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
                code, message = error_for(result)
                return [error(code, message, request_id)]
            return self._paired(request_id, attempt, int(result.result), result)

        return [Commit(writes.add_device(device), None, registered, request_id)]

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
        raw, sig = frame.body["record"], frame.body["sig"]
        max_blob = self.limits.max_attachment_bytes
        if not self._check_signatures_apart:
            try:
                record = parse_record(raw, sig, max_blob_size=max_blob)
                verify_record_signature(record, device.sign_key)
            except RecordRejected as exc:
                return [error(ErrorCode.REJECTED, str(exc), frame.id)]
            return [self._store(frame.id, record, device)]

        # The signature first, over the bytes as pushed (it covers the context and the
        # record's bytes: no parse needed), then the record read as the archive reads
        # records a paired device signed (parse_stored_record: ~9 instead of ~14 µs of
        # the event loop). A push whose signature fails is read strictly, so that it
        # is refused for what is wrong with the record first, as before.
        def checked(holds: bool) -> list[Action]:
            try:
                if not holds:
                    parse_record(raw, sig, max_blob_size=max_blob)
                    message = "record signature does not verify with the device key"
                    return [error(ErrorCode.REJECTED, message, frame.id)]
                record = parse_stored_record(raw, sig, max_blob_size=max_blob)
            except RecordRejected as exc:
                return [error(ErrorCode.REJECTED, str(exc), frame.id)]
            if self.state is State.CLOSED:
                return []
            return [self._store(frame.id, record, device)]

        message = RECORD_SIGNING_CONTEXT + raw
        return [CheckSignature(device.sign_key, message, sig, checked, frame.id)]

    def _store(self, request_id: int, record: Record, device: Device) -> Commit:
        """Commit a record whose signature holds; the ack follows the durable commit."""
        op = ingest.push_record(record, device.id, device.owner)
        acked = functools.partial(logged, request_id, "record")
        return Commit(op, ingest.log_index_of, acked, request_id)

    # -- mail (session_mail.py); history is in session_history.py, blobs in session_blobs.py ---

    def wake_mail(self) -> list[Action]:
        """Fetch and deliver waiting mail, keeping at most MAIL_WINDOW unacknowledged."""
        return self.mail.wake_mail()

    def wake_notices(self) -> list[Action]:
        """Send delivery notices for this device's mail that its recipients took."""
        return self.mail.wake_notices()

    _HANDLERS: ClassVar[dict[str, Callable[[PeerSession, Frame], list[Action]]]] = {
        "push": lambda s, f: s._push(f),
        "mail": lambda s, f: s.mail.mail(f),
        "mail_ack": lambda s, f: s.mail.mail_ack(f),
        "history": lambda s, f: s.history.request(f),
        "blob_begin": lambda s, f: s.blobs.begin(f),
        "blob_chunk": lambda s, f: s.blobs.chunk(f),
        "blob_end": lambda s, f: s.blobs.end(f),
        "blob_get": lambda s, f: s.blobs.get(f),
        "reach": lambda s, f: s.reach.request(f),
    }
