"""The peer service: aiohttp WebSocket glue around the sans-I/O session.

Mounted by the box at GET /peer. Per connection: the Noise handshake chosen
by the selector byte, then one task reading transport messages, feeding
whole frames to a PeerSession and running the actions it returns. Work that
waits (commits, reads, pairing) runs in background tasks, at most
`max_in_flight_frames` per connection; when they are all busy the reader
stops reading, so TCP pushes back on the phone instead of the box buffering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from strongroom.archive.blobs import BlobLocation
from strongroom.archive.committer import Committed, GroupCommitter
from strongroom.archive.errors import BlobError
from strongroom.archive.readers import ReaderPool
from strongroom.archive.store import Archive
from strongroom.config import Limits
from strongroom.identity import BoxKeys
from strongroom.noise import HandshakeState, NoiseError, TransportSession
from strongroom.pairing.codes import code_commitment, committed_comparison_code, new_code_nonce
from strongroom.pairing.gate import PairingGate, PairingOutcome, Refusal
from strongroom.peer import history, ingest
from strongroom.peer.actions import (
    Action,
    AskGate,
    CheckSignature,
    Close,
    Commit,
    DeviceSeen,
    Query,
    Send,
    StreamBlob,
    UploadAbort,
    UploadFinish,
    UploadOpen,
    UploadWrite,
    WakeMail,
    WakeNotices,
)
from strongroom.peer.channel import WS_MAX_MSG_SIZE, ChannelError, SecureChannel
from strongroom.peer.frames import (
    BLOB_PIECE_BYTES,
    CloseCode,
    ErrorCode,
    Frame,
    encode_frame,
    error_frame,
)
from strongroom.peer.handshake import (
    HandshakeKind,
    UnknownSelector,
    box_payload,
    parse_phone_payload,
    responder,
    split_first_message,
)
from strongroom.peer.outbox import Outbox
from strongroom.peer.session import BoxInfo, CodeFunction, PeerSession, State
from strongroom.peer.signatures import SignatureChecker
from strongroom.peer.uploads import UploadDriver

log = logging.getLogger(__name__)

READERS = 4  # reader connections for queries, used from worker threads
SIGNATURE_WORKERS = 2  # threads checking record signatures (libsodium releases the GIL)
SEEN_EVERY_S = 60.0
WIND_DOWN_S = 10.0  # how long close_all waits for the connections to put their work away


class PeerService:
    """Serves phones at /peer: handshakes, sessions, mail wake-ups, revocation."""

    def __init__(
        self,
        archive: Archive,
        committer: GroupCommitter,
        keys: BoxKeys,
        limits: Limits,
        pairing_gate: PairingGate,
        clock: Callable[[], float] = time.time,
        *,
        box_name: str = "strongroom",
        comparison_code: CodeFunction = committed_comparison_code,
    ) -> None:
        self.archive = archive
        self.committer = committer
        self.keys = keys
        self.limits = limits
        self.gate = pairing_gate
        self.clock = clock
        self.comparison_code = comparison_code
        self.box = BoxInfo(box_name, keys.fingerprint, keys.signing_public)
        self.readers = ReaderPool(archive, READERS)
        self.signatures = SignatureChecker(SIGNATURE_WORKERS)
        self.active_uploads: dict[bytes, UploadDriver] = {}
        self._connections: set[_Connection] = set()
        self._handshaking = 0
        self._by_device: dict[int, set[_Connection]] = {}
        self._claims: dict[int, int] = {}  # device -> handshakes past the cap check, unregistered
        self._revoked: set[int] = set()
        self._closing = False
        self._last_seen: dict[int, float] = {}
        self._background: set[asyncio.Future[Any]] = set()

    # -- public API ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application, path: str = "/peer") -> None:
        app.router.add_get(path, self.handle)

    def online_devices(self) -> set[int]:
        """Devices with at least one open, authenticated session."""
        return {device for device, conns in self._by_device.items() if conns}

    def revoke(self, device_id: int) -> None:
        """Refuse this device from now on and close its open sessions (within a second).

        The caller records the revocation in the archive (writes.revoke_device);
        this makes it effective at once on live connections.
        """
        self._revoked.add(device_id)
        for conn in list(self._by_device.get(device_id, ())):
            conn.spawn_inline(conn.session.revoke())

    async def close_all(self) -> None:
        """Stop accepting connections and close every open one."""
        self._closing = True
        conns = list(self._connections)
        await asyncio.gather(
            *(c.close(CloseCode.GOING_AWAY, "the box is shutting down") for c in conns),
            return_exceptions=True,
        )
        # Every connection winds down (its upload put away) and last_seen writes end
        # before the archive they write to is closed.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WIND_DOWN_S):
                await asyncio.gather(*(c.finished.wait() for c in conns))
                await asyncio.gather(*list(self._background), return_exceptions=True)
        self.readers.close()
        self.signatures.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """GET /peer: the WebSocket endpoint."""
        if (
            self._closing
            or len(self._connections) + self._handshaking >= self.limits.max_connections
        ):
            raise web.HTTPServiceUnavailable(text="too many connections")
        # One Noise message (plus the selector byte) per WebSocket message, never more.
        ws = web.WebSocketResponse(max_msg_size=WS_MAX_MSG_SIZE, autoping=True)
        await ws.prepare(request)
        self._handshaking += 1
        try:
            try:
                async with asyncio.timeout(self.limits.handshake_timeout_s):
                    conn = await self._handshake(ws)
            except TimeoutError:
                await _close(ws, CloseCode.TIMEOUT, "handshake timeout")
                return ws
        finally:
            self._handshaking -= 1
        if conn is None:
            return ws
        self._connections.add(conn)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            if conn.session.device is not None:
                self._by_device.get(conn.session.device.id, set()).discard(conn)
        return ws

    # -- handshake -----------------------------------------------------------------------------

    async def _handshake(self, ws: web.WebSocketResponse) -> _Connection | None:
        claims: list[int] = []  # devices whose connection slot this handshake holds
        try:
            return await self._shake_hands(ws, claims)
        finally:
            for device_id in claims:  # registered by now, or refused: the claim is done
                self._claims[device_id] -= 1
                if not self._claims[device_id]:
                    del self._claims[device_id]

    async def _shake_hands(
        self, ws: web.WebSocketResponse, claims: list[int]
    ) -> _Connection | None:
        first = await _receive_binary(ws)
        if first is None:
            return None
        try:
            kind, message = split_first_message(first)
        except UnknownSelector as exc:
            await _close(ws, CloseCode.PROTOCOL, str(exc))
            return None
        psk = None
        if kind is HandshakeKind.XXPSK3:
            psk = self.gate.qr_secret()
            if psk is None:
                await _close(ws, CloseCode.REFUSED, "no QR pairing is open")
                return None
        hs = responder(kind, self.keys.noise_static_private, psk)
        try:
            hs.read_message(message)
        except NoiseError:
            await _close(ws, CloseCode.PROTOCOL, "handshake failed")
            return None
        device = None
        if kind is HandshakeKind.IK:
            # The phone's key is known now: refuse it before anything else happens.
            device = await self._identify(ws, _remote(hs), claims, pairing=False)
            if device is None:
                return None
            await ws.send_bytes(hs.write_message(box_payload(self.keys.signing_public, None)))
            nonces = None
        else:
            box_nonce = new_code_nonce()
            commitment = code_commitment(box_nonce)
            await ws.send_bytes(hs.write_message(box_payload(self.keys.signing_public, commitment)))
            try:
                third = await _receive_binary(ws)
                if third is None:
                    return None
                phone_nonce = parse_phone_payload(hs.read_message(third))
            except (NoiseError, ValueError):
                await _close(ws, CloseCode.PROTOCOL, "handshake failed")
                return None
            finally:
                if psk is not None:
                    self.gate.consume_qr_secret()  # one attempt per secret, success or not
            nonces = (phone_nonce, box_nonce)
            device = await self._identify(ws, _remote(hs), claims, pairing=True)
            if device is None and ws.closed:
                return None
            if device is None and kind is HandshakeKind.XX:
                self.gate.note_unknown_contact(_remote(hs))
        transport = TransportSession.from_handshake(hs)
        session = PeerSession(
            box=self.box,
            limits=self.limits,
            kind=kind,
            remote_static=_remote(hs),
            handshake_hash=hs.handshake_hash,
            device=device,
            code_nonces=nonces,
            comparison_code=self.comparison_code,
            check_signatures_apart=True,
        )
        conn = _Connection(self, ws, SecureChannel(transport, self.limits.max_frame_bytes), session)
        if device is not None:
            self.register(conn)
        return conn

    async def _identify(
        self, ws: web.WebSocketResponse, noise_key: bytes, claims: list[int], *, pairing: bool
    ) -> history.Device | None:
        """The paired device with this key; closes the socket if it may not connect.

        When `pairing`, an unknown key is fine (None, socket left open). An accepted
        device's id goes to `claims`: it holds one of the device's connection slots
        until the caller has registered the connection (handshakes of one device
        running side by side cannot all pass the cap while none is registered yet).
        """
        device: history.Device | None = await self.readers.run(
            lambda c: history.device_by_noise_key(c, noise_key)
        )
        if device is None:
            if not pairing:
                await _close(ws, CloseCode.UNKNOWN_DEVICE, "unknown device")
            return None
        if device.revoked or device.id in self._revoked:
            await _close(ws, CloseCode.REFUSED, "revoked")
            return None
        open_or_claimed = len(self._by_device.get(device.id, ())) + self._claims.get(device.id, 0)
        if open_or_claimed >= self.limits.max_connections_per_device:
            await _close(ws, CloseCode.TOO_MANY, "too many connections for this device")
            return None
        self._claims[device.id] = self._claims.get(device.id, 0) + 1
        claims.append(device.id)
        return device

    def device_seen(self, device_id: int) -> None:
        """Record `last_seen` at most once a minute per device (it costs a durable write)."""
        now = self.clock()
        if now - self._last_seen.get(device_id, float("-inf")) < SEEN_EVERY_S:
            return
        self._last_seen[device_id] = now
        task = asyncio.create_task(self._touch(device_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _touch(self, device_id: int) -> None:
        try:
            await self.committer.submit(ingest.touch(device_id))
        except Exception as exc:  # bookkeeping only: never fail a session for it
            log.warning("could not record last_seen of device %d: %s", device_id, exc)

    def track(self, task: asyncio.Future[Any]) -> None:
        """Keep a connection's wind-down alive until it ends; close_all waits for it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def register(self, conn: _Connection) -> None:
        assert conn.session.device is not None
        self._by_device.setdefault(conn.session.device.id, set()).add(conn)

    # -- wake-ups between sessions -------------------------------------------------------------

    def wake_mail(self, owner: str, device: int | None) -> None:
        for conn in list(self._connections):
            target = conn.session.device
            # Every session of the owner looks: mail for a revoked device falls back to
            # the owner's other devices, and the query decides who may take what.
            if target is not None and target.owner == owner:
                conn.spawn_inline(conn.session.wake_mail())

    def wake_notices(self, device: int) -> None:
        for conn in list(self._by_device.get(device, ())):
            conn.spawn_inline(conn.session.wake_notices())


def _remote(hs: HandshakeState) -> bytes:
    remote = hs.remote_static
    assert remote is not None  # every pattern we run transmits or pre-shares it
    return remote


async def _receive_binary(ws: web.WebSocketResponse) -> bytes | None:
    msg = await ws.receive()
    if msg.type == WSMsgType.BINARY:
        return bytes(msg.data)
    if msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        await _close(ws, CloseCode.PROTOCOL, "binary messages only")
    return None


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code=code, message=reason.encode()[:120])


class _Connection:
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
        self.outbox = Outbox(channel, ws.send_bytes)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_input = time.monotonic()
        self._closed = False
        self.finished = asyncio.Event()  # set once the wind-down is over

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
                await _close(self.ws, CloseCode.GOING_AWAY, "closing")
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
        await _close(self.ws, code, reason)

    # -- actions -------------------------------------------------------------------------------

    def spawn_inline(self, actions: list[Action]) -> None:
        """Run actions in a task of their own (wake-ups from other sessions, revocation)."""
        if actions and not self._closed:
            task = asyncio.create_task(self.execute(actions, spawn=False))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def execute(self, actions: list[Action], *, spawn: bool) -> None:
        """Run the session's actions in order; waiting ones go to background tasks if `spawn`."""
        for action in actions:
            if isinstance(action, Send):
                await self.send(action.frame)
            elif isinstance(action, Close):
                await self.close(action.code, action.reason)
            elif isinstance(action, DeviceSeen):
                self.service.device_seen(action.device_id)
            elif isinstance(action, WakeMail):
                self.service.wake_mail(action.owner, action.device)
            elif isinstance(action, WakeNotices):
                self.service.wake_notices(action.device)
            elif isinstance(action, UploadOpen):
                opened = await self.uploads.open(action.sha256, action.size)
                await self.execute(action.then(opened), spawn=spawn)
            elif isinstance(action, UploadWrite):
                failed = await self.uploads.write(action.data)
                if failed is not None:
                    await self.execute(action.on_error(failed), spawn=spawn)
            elif isinstance(action, UploadFinish):
                finished = await self.uploads.finish()
                await self.execute(action.then(finished), spawn=spawn)
            elif isinstance(action, UploadAbort):
                await self.uploads.abort()
            elif spawn:
                # Back-pressure: with every slot busy, we stop reading the socket here.
                await self._slots.acquire()
                task = asyncio.create_task(self._background(action))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                await self._perform(action)
        if self.session.device is not None and self.session.state is State.READY:
            if self not in self.service._by_device.get(self.session.device.id, ()):
                self.service.register(self)

    async def _background(self, action: Action) -> None:
        try:
            await self._perform(action)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("peer action %s failed", type(action).__name__)
            await self.send(error_frame(ErrorCode.INTERNAL, "internal error"))
        finally:
            self._slots.release()

    async def _perform(self, action: Action) -> None:
        if isinstance(action, Commit):
            outcome: Committed | Exception
            try:
                outcome = await self.service.committer.submit(
                    action.op, log_index_of=action.log_index_of
                )
            except Exception as exc:
                outcome = exc
            await self.execute(action.then(outcome), spawn=False)
        elif isinstance(action, CheckSignature):
            holds = await self.service.signatures.check(
                action.public_key, action.message, action.signature
            )
            await self.execute(action.then(holds), spawn=False)
        elif isinstance(action, Query):
            result = await self.service.readers.run(action.read)
            await self.execute(action.then(result), spawn=False)
        elif isinstance(action, AskGate):
            try:
                decision = await self.service.gate.request(action.attempt)
            except Exception:
                log.exception("the pairing gate failed")
                decision = PairingOutcome.refuse(Refusal.REJECTED)
            await self.execute(action.then(decision), spawn=False)
        elif isinstance(action, StreamBlob):
            await self._stream_blob(action.request_id, action.location, action.size, action.offset)
        else:
            raise TypeError(f"not a waiting action: {action!r}")

    async def send(self, frame: Frame) -> None:
        if self._closed:
            return
        try:
            await self.outbox.send(encode_frame(frame))
        except (ConnectionError, RuntimeError):
            self._closed = True

    async def _stream_blob(
        self, request_id: int, location: BlobLocation, size: int, offset: int
    ) -> None:
        # Decryption starts at the chunk holding `offset`, so a resumed download costs
        # only what remains; chunks come from the disk thread eight at a time.
        batches = self.service.archive.blobs.read_batches(location, size, offset)
        pending = bytearray()
        sent = offset
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                for chunk in batch:
                    pending += chunk
                taken = 0
                with memoryview(pending) as view:
                    # The last piece waits for the end of the blob: it carries end=True.
                    while len(pending) - taken > BLOB_PIECE_BYTES:
                        piece = bytes(view[taken : taken + BLOB_PIECE_BYTES])
                        await self._send_piece(request_id, sent, piece, end=False)
                        taken += len(piece)
                        sent += len(piece)
                del pending[:taken]
                if self._closed:
                    return
        except BlobError as exc:
            log.error("blob stream failed: %s", exc)
            await self.send(
                error_frame(ErrorCode.INTERNAL, "the stored blob is damaged", request_id)
            )
            return
        await self._send_piece(request_id, sent, bytes(pending), end=True)

    async def _send_piece(self, request_id: int, offset: int, data: bytes, *, end: bool) -> None:
        await self.send(
            Frame("blob_data", request_id, {"offset": offset, "data": data, "end": end})
        )
