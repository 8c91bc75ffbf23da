"""One phone's connection: the I/O side of a PeerSession, run by PeerService.

Reads transport messages, feeds whole frames to the sans-I/O session and runs
the actions it returns: sends and closes at once, uploads in order, a push's
signature check, commit and ack by callbacks (peer/chain.py), other waiting work
(reads, the pairing gate, blob streams: peer/blob_stream.py) in background tasks; at most
`max_in_flight_frames` of these at once: when all are busy the reader stops
reading, so TCP pushes back on the phone. Its wind-down (the upload put away, the
blob's claim let go) cannot be cut half-way by a cancelled handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from strongroom.archive.committer import Committed
from strongroom.noise import NoiseError
from strongroom.pairing.gate import PairingOutcome, Refusal
from strongroom.peer.actions import (
    Action,
    AskGate,
    CheckSignature,
    Close,
    Commit,
    DeviceSeen,
    Query,
    RefreshReach,
    Send,
    StreamBlob,
    UploadAbort,
    UploadFinish,
    UploadOpen,
    UploadWrite,
    WakeMail,
    WakeNotices,
    request_of,
)
from strongroom.peer.blob_stream import BlobStreams
from strongroom.peer.chain import ActionChain, run_in_task
from strongroom.peer.channel import ChannelError, SecureChannel
from strongroom.peer.frames import (
    CloseCode,
    ErrorCode,
    Frame,
    encode_frame,
    error_frame,
)
from strongroom.peer.head_sender import HeadSender
from strongroom.peer.outbox import Outbox
from strongroom.peer.session import PeerSession, State
from strongroom.peer.uploads import UploadDriver
from strongroom.peer.ws_send import CONNECTION_GONE, FrameWriter
from strongroom.reach.helper import HelperUnavailable

if TYPE_CHECKING:
    from strongroom.peer.server import PeerService

log = logging.getLogger(__name__)


async def receive_binary(ws: web.WebSocketResponse) -> bytes | None:
    msg = await ws.receive()
    if msg.type == WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        await close_ws(ws, CloseCode.PROTOCOL, "binary messages only")
    return None


async def close_ws(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, message=reason.encode()[:120])


class Connection:
    """The I/O side of one authenticated (or pairing) session."""

    def __init__(
        self,
        service: PeerService,
        ws: web.WebSocketResponse,
        channel: SecureChannel,
        session: PeerSession,
    ) -> None:
        self.service = service
        self.ws = ws
        self.channel = channel
        self.session = session
        self.uploads = UploadDriver(
            service.archive,
            service.committer,
            service.readers.run,
            service.active_uploads,
            device=lambda: None if session.device is None else session.device.id,
            close_connection=lambda: self.close(
                CloseCode.GOING_AWAY, "replaced by a newer connection"
            ),
        )
        self._slots = asyncio.Semaphore(service.limits.max_in_flight_frames)
        self.outbox = Outbox(channel, ws.send_bytes, FrameWriter(ws))  # one write a message
        self.blob_streams = BlobStreams(
            service.archive.blobs, self.outbox, self.send, lambda: self._closed, self._gone
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_input = time.monotonic()
        self._closed = False
        # Head-bearing frames leave in the order they are stamped, each with the
        # consistency proof from the head sent before it (peer/head_sender.py).
        session.heads.proofs = service.log_proofs
        self._head_sender = HeadSender(
            session.heads, service.readers.run, self._queue_head, self._note_ahead
        )
        self.finished = asyncio.Event()  # set once the wind-down is over
        # A push's signature check, commit and ack without a task each (peer/chain.py).
        self._noting: asyncio.Future[None] | None = None  # the last write send_now watches
        self._chain = ActionChain(self, service.signatures, service.committer, self._slots.release)

    # -- main loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        watchdog = asyncio.create_task(self._idle_watchdog())
        try:
            await self.execute(self.session.start(), spawn=True)
            while not self._closed:
                msg = await self.ws.receive()
                self._last_input = time.monotonic()
                if msg.type != WSMsgType.BINARY:
                    if msg.type == WSMsgType.TEXT:
                        await self.close(CloseCode.PROTOCOL, "binary messages only")
                    break
                try:
                    frames = self.channel.open(bytes(msg.data))
                except (NoiseError, ChannelError):
                    await self.close(CloseCode.PROTOCOL, "transport message rejected")
                    break
                for raw in frames:
                    await self.execute(self.session.receive(raw), spawn=True)
                self.outbox.bundling = self.session.peer_bundles
        finally:
            watchdog.cancel()
            self._closed = True
            # The box runs aiohttp with handler_cancellation: once the socket is gone
            # (right after a clean close, too) this task is cancelled, and a cancel
            # landing in the middle of putting an upload away left its blob claimed
            # (`busy` to every later blob_begin). The wind-down runs in a task of its
            # own that a cancellation cannot stop half-way.
            wind_down = asyncio.ensure_future(self._wind_down())
            self.service.track(wind_down)
            await asyncio.shield(wind_down)

    async def _wind_down(self) -> None:
        """Keep a partial upload for resuming, let its claim go, stop the tasks."""
        try:
            await self.execute(self.session.closed(), spawn=False)
        finally:
            await self.uploads.abort()  # idempotent; also covers a blob_begin cut short
            for task in list(self._tasks):
                task.cancel()
            if not self.ws.closed:
                await close_ws(self.ws, CloseCode.GOING_AWAY, "closing")
            self.finished.set()

    async def _idle_watchdog(self) -> None:
        idle = self.service.limits.idle_timeout_s
        while not self._closed:
            await asyncio.sleep(min(idle / 4, 1.0))
            quiet = time.monotonic() - self._last_input
            if quiet > idle and not self.session.busy:
                await self.close(CloseCode.TIMEOUT, "idle timeout")
                return

    async def close(self, code: int, reason: str) -> None:
        self._closed = True
        await close_ws(self.ws, code, reason)

    # -- actions -------------------------------------------------------------------------------

    def spawn_inline(self, actions: list[Action]) -> None:
        """Run actions in a task of their own (wake-ups from other sessions, revocation)."""
        if actions and not self._closed:
            run_in_task(self._tasks, self.execute(actions, spawn=False))

    async def execute(self, actions: list[Action], *, spawn: bool) -> None:
        """Run the session's actions in order; waiting ones go to background tasks if `spawn`."""
        for action in actions:
            match action:
                case Send(frame=frame):
                    await self.send(frame)
                case Close(code=code, reason=reason):
                    await self.close(code, reason)
                case DeviceSeen(device_id=device_id):
                    self.service.device_seen(device_id)
                case WakeMail(owner=owner, device=device):
                    self.service.wake_mail(owner, device)
                case WakeNotices(device=device):
                    self.service.wake_notices(device)
                # Uploads run in order, on the reader's task: a blob's pieces must not
                # overtake each other.
                case UploadOpen():
                    opened = await self.uploads.open(action.sha256, action.size)
                    await self.execute(action.then(opened), spawn=spawn)
                case UploadWrite():
                    failed = await self.uploads.write(action.data)
                    if failed is not None:
                        await self.execute(action.on_error(failed), spawn=spawn)
                case UploadFinish():
                    finished = await self.uploads.finish()
                    await self.execute(action.then(finished), spawn=spawn)
                case UploadAbort():
                    await self.uploads.abort()
                case CheckSignature() | Commit() if spawn:
                    # Back-pressure: with every slot busy, we stop reading the socket here.
                    await self._slots.acquire()
                    self._chain.start(action)  # releases the slot once its frames are out
                case _ if spawn:
                    await self._slots.acquire()
                    run_in_task(self._tasks, self._background([action], action))
                case _:
                    await self._perform(action)
        self.after_actions()

    def after_actions(self) -> None:
        if self.session.device is not None and self.session.state is State.READY:
            self.service.register(self)  # idempotent: a set of the device's connections

    def finish_in_task(self, actions: list[Action], release: Callable[[], None]) -> None:
        """For the chain: run the rest of a continuation in a task, then `release`."""
        run_in_task(self._tasks, self._background(actions, actions[0], release))

    async def _background(
        self,
        actions: list[Action],
        answering: Action,
        release: Callable[[], None] | None = None,
    ) -> None:
        try:
            await self.execute(actions, spawn=False)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("peer action %s failed", type(answering).__name__)
            # Name the request it answered: the phone fails that request at once
            # instead of waiting for a reply that will never come (protocol.md §10.1).
            request_id = request_of(answering)
            await self.send(error_frame(ErrorCode.INTERNAL, "internal error", request_id))
        finally:
            (release or self._slots.release)()

    async def _perform(self, action: Action) -> None:
        """Run one waiting action and feed its outcome back to the session."""
        match action:
            case Commit():
                outcome: Committed | Exception
                try:
                    outcome = await self.service.committer.submit(
                        action.op, log_index_of=action.log_index_of
                    )
                except Exception as exc:
                    outcome = exc
                await self.execute(action.then(outcome), spawn=False)
            case CheckSignature(public_key=key, message=message, signature=signature):
                holds = await self.service.signatures.check(key, message, signature)
                await self.execute(action.then(holds), spawn=False)
            case Query():
                result = await self.service.readers.run(action.read)
                await self.execute(action.then(result), spawn=False)
            case AskGate():
                try:
                    decision = await self.service.gate.request(action.attempt)
                except Exception:
                    log.exception("the pairing gate failed")
                    decision = PairingOutcome.refuse(Refusal.REJECTED)
                await self.execute(action.then(decision), spawn=False)
            case RefreshReach(device_id=device_id, auth_pub=auth_pub):
                refresh = self.session.box.reach_refresh
                assert refresh is not None  # the session asks only a box with reach
                answer: Mapping[str, Any] | Exception
                try:
                    answer = await refresh(device_id, auth_pub)
                except Exception as exc:  # the session turns it into an error frame
                    if not isinstance(exc, HelperUnavailable):
                        log.exception("remote reach refresh failed")
                    answer = exc
                await self.execute(action.then(answer), spawn=False)
            case StreamBlob(request_id=request_id, location=location, size=size, offset=offset):
                await self.blob_streams.stream(request_id, location, size, offset)
            case _:
                raise TypeError(f"not a waiting action: {action!r}")

    async def send(self, frame: Frame) -> None:
        if self._closed:
            return
        try:
            if self.session.heads.carries_head(frame):
                written = await self._head_sender.put(frame)
            else:
                written = self.outbox.queue(encode_frame(frame))
            await asyncio.shield(written)
        except CONNECTION_GONE:
            self._closed = True

    def send_now(self, frame: Frame) -> asyncio.Future[None]:
        """`send` without waiting: the frame takes its place in line now (a head frame
        maybe behind one that waits for its proof); the future ends once it is
        written. A lost connection is noted when it fails."""
        if self._closed:
            written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            written.set_result(None)
            return written
        if self.session.heads.carries_head(frame):
            queued = self._head_sender.put_soon(frame)
        else:
            queued = self.outbox.queue(encode_frame(frame))
        if queued is not self._noting:  # the acks of one flush share its future
            self._noting = queued
            queued.add_done_callback(self._note_written)
        return queued

    def _note_written(self, written: asyncio.Future[None]) -> None:
        failure = None if written.cancelled() else written.exception()
        if isinstance(failure, CONNECTION_GONE):
            self._closed = True
        elif failure is not None:
            log.error("writing to the phone failed", exc_info=failure)

    def _queue_head(self, frame: Frame) -> asyncio.Future[None]:
        return self.outbox.queue(encode_frame(frame))

    def _note_ahead(self) -> None:
        ahead = self.session.heads.phone_ahead
        if ahead is not None and self.session.device is not None:
            self.service.device_ahead(self.session.device, ahead)

    def _gone(self) -> None:
        self._closed = True
