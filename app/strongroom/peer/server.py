"""The peer service: aiohttp WebSocket glue around the sans-I/O session.

Mounted by the box at GET /peer. Per connection: the Noise handshake chosen
by the selector byte, the device looked up and its connection cap claimed,
then a `Connection` (connection.py) runs the session. The service also routes
wake-ups between sessions (mail, notices), revocation and shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.readers import ReaderPool
from strongroom.archive.store import Archive, WriteOp
from strongroom.config import Limits
from strongroom.identity import BoxKeys
from strongroom.noise import HandshakeState, NoiseError, TransportSession
from strongroom.pairing.codes import code_commitment, committed_comparison_code, new_code_nonce
from strongroom.pairing.gate import PairingGate
from strongroom.peer import history, ingest
from strongroom.peer.channel import WS_MAX_MSG_SIZE, SecureChannel
from strongroom.peer.connection import Connection, close_ws, receive_binary
from strongroom.peer.frames import (
    CloseCode,
)
from strongroom.peer.handshake import (
    HandshakeKind,
    UnknownSelector,
    box_payload,
    parse_phone_payload,
    responder,
    split_first_message,
)
from strongroom.peer.log_proofs import LogProofs
from strongroom.peer.session import BoxInfo, CodeFunction, PeerSession, State
from strongroom.peer.signatures import SignatureChecker
from strongroom.peer.uploads import UploadDriver

log = logging.getLogger(__name__)

READERS = 4  # reader connections for queries, used from worker threads
SIGNATURE_WORKERS = 2  # threads checking record signatures (libsodium releases the GIL)
SEEN_EVERY_S = 60.0
# Audited when a phone's `known` head is beyond this box's log (protocol.md §6.3).
LOG_AHEAD_ACTION = "device.log_ahead"
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
        # Log nodes for consistency proofs, shared; the committer's between its batches.
        self.log_proofs = LogProofs(committer.consistency_proofs)
        committer.held_sizes = self.log_proofs.held_sizes  # the sizes sessions hold
        self.active_uploads: dict[bytes, UploadDriver] = {}
        self._connections: set[Connection] = set()
        self._handshaking = 0
        self._by_device: dict[int, set[Connection]] = {}
        self._claims: dict[int, int] = {}  # device -> handshakes past the cap check, unregistered
        self._revoked: set[int] = set()
        self._closing = False
        self._last_seen: dict[int, float] = {}
        self._ahead_noted: set[int] = set()
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
                await close_ws(ws, CloseCode.TIMEOUT, "handshake timeout")
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
            conn.session.heads.release()
            if conn.session.device is not None:
                self._by_device.get(conn.session.device.id, set()).discard(conn)
        return ws

    # -- handshake -----------------------------------------------------------------------------

    async def _handshake(self, ws: web.WebSocketResponse) -> Connection | None:
        claims: list[int] = []  # devices whose connection slot this handshake holds
        try:
            return await self._shake_hands(ws, claims)
        finally:
            for device_id in claims:  # registered by now, or refused: the claim is done
                self._claims[device_id] -= 1
                if not self._claims[device_id]:
                    del self._claims[device_id]

    async def _shake_hands(self, ws: web.WebSocketResponse, claims: list[int]) -> Connection | None:
        first = await receive_binary(ws)
        if first is None:
            return None
        try:
            kind, message = split_first_message(first)
        except UnknownSelector as exc:
            await close_ws(ws, CloseCode.PROTOCOL, str(exc))
            return None
        psk = None
        if kind is HandshakeKind.XXPSK3:
            psk = self.gate.qr_secret()
            if psk is None:
                await close_ws(ws, CloseCode.REFUSED, "no QR pairing is open")
                return None
        hs = responder(kind, self.keys.noise_static_private, psk)
        try:
            hs.read_message(message)
        except NoiseError:
            await close_ws(ws, CloseCode.PROTOCOL, "handshake failed")
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
                third = await receive_binary(ws)
                if third is None:
                    return None
                phone_nonce = parse_phone_payload(hs.read_message(third))
            except (NoiseError, ValueError):
                await close_ws(ws, CloseCode.PROTOCOL, "handshake failed")
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
        conn = Connection(self, ws, SecureChannel(transport, self.limits.max_frame_bytes), session)
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
                await close_ws(ws, CloseCode.UNKNOWN_DEVICE, "unknown device")
            return None
        if device.revoked or device.id in self._revoked:
            await close_ws(ws, CloseCode.REFUSED, "revoked")
            return None
        open_or_claimed = len(self._by_device.get(device.id, ())) + self._claims.get(device.id, 0)
        if open_or_claimed >= self.limits.max_connections_per_device:
            await close_ws(ws, CloseCode.TOO_MANY, "too many connections for this device")
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

    def device_ahead(self, device: history.Device, size: int) -> None:
        """A phone saw a longer log than this box has (restored from an older backup):
        audit it once per device and run, so the dashboard can name who must pair again."""
        if device.id in self._ahead_noted:
            return
        self._ahead_noted.add(device.id)
        details = {"device": device.id, "owner": device.owner, "phone_log_size": size}
        op = writes.audit("box", LOG_AHEAD_ACTION, device.name, details)
        task = asyncio.create_task(self._bookkeep(op, "log_ahead", device.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _bookkeep(self, op: WriteOp, what: str, device_id: int) -> None:
        try:
            await self.committer.submit(op)
        except Exception as exc:  # bookkeeping only: never fail a session for it
            log.warning("could not record %s of device %d: %s", what, device_id, exc)

    async def _touch(self, device_id: int) -> None:
        await self._bookkeep(ingest.touch(device_id), "last_seen", device_id)

    def track(self, task: asyncio.Future[Any]) -> None:
        """Keep a connection's wind-down alive until it ends; close_all waits for it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def register(self, conn: Connection) -> None:
        """Count `conn` among its device's open sessions (revoke, wake-ups, online).

        Idempotent: the connection calls it after every batch of actions that
        leaves its session authenticated.
        """
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

    def reach_changed(self) -> None:
        """Remote reach was turned on or off or got a new address: every open session
        whose phone reads `reach_changed` is told, and asks again (protocol.md §12.2)."""
        for conn in list(self._connections):
            if conn.session.state is State.READY:
                conn.spawn_inline(conn.session.reach.changed())

    def wake_notices(self, device: int) -> None:
        for conn in list(self._by_device.get(device, ())):
            conn.spawn_inline(conn.session.wake_notices())


def _remote(hs: HandshakeState) -> bytes:
    remote = hs.remote_static
    assert remote is not None  # every pattern we run transmits or pre-shares it
    return remote
