"""One encrypted WebSocket session from a phone to the box: handshake, then frames.

`open_link` runs the Noise handshake chosen by the selector byte; `Link`
then sends frames, matches replies to requests by id, hands streamed replies
(blob_data) to their reader and everything the box sends on its own (mail,
delivery notices, reveal) to a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from strongroom.client.stream_buffer import StreamBuffer
from strongroom.identity import compute_fingerprint
from strongroom.noise import NoiseError, TransportSession
from strongroom.pairing.codes import new_code_nonce
from strongroom.peer.ack_frames import parse_ack
from strongroom.peer.blob_frames import blob_chunk_parts, parse_blob_data
from strongroom.peer.channel import WS_MAX_MSG_SIZE, ChannelError, SecureChannel
from strongroom.peer.frames import (
    CloseCode,
    Direction,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
)
from strongroom.peer.handshake import (
    HandshakeKind,
    initiator,
    parse_box_payload,
    phone_payload,
)
from strongroom.peer.outbox import Outbox
from strongroom.peer.push_frames import push_bytes

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1024 * 1024  # what this client accepts from the box


class LinkError(Exception):
    """Base class of the reference client's connection failures."""


class ConnectionLost(LinkError):
    """The connection closed (or broke) before the reply arrived; retry after reconnecting."""


class HandshakeRefused(LinkError):
    """The box closed the connection during the handshake (unknown device, revoked...)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"the box refused the connection ({code}): {reason}")
        self.code = code
        self.reason = reason


class FingerprintMismatch(LinkError):
    """The box's keys do not match the fingerprint the phone expected: not our box."""


class BoxError(LinkError):
    """The box answered a request with an `error` frame."""

    def __init__(self, code: str, message: str, reason: str | None = None) -> None:
        super().__init__(f"{code}: {message}" + (f" ({reason})" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Handshake:
    """What the handshake established, beyond the transport keys."""

    kind: HandshakeKind
    handshake_hash: bytes
    box_noise_public: bytes
    box_sign_public: bytes
    code_commitment: bytes | None
    phone_code_nonce: bytes | None


def _error_of(frame: Frame) -> BoxError:
    body = frame.body
    return BoxError(str(body.get("code")), str(body.get("message")), body.get("reason"))


class Link:
    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        channel: SecureChannel,
        handshake: Handshake,
        on_frame: Callable[[Frame], None],
        window: int = 64,
    ) -> None:
        self.ws = ws
        self.handshake = handshake
        self._channel = channel
        self._on_frame = on_frame
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._streams: dict[int, StreamBuffer[Frame]] = {}
        # Bundles frames once the box's hello lists "bundles" (see PhoneClient._hello).
        self.outbox = Outbox(self._channel, self.ws.send_bytes)
        self._window = asyncio.Semaphore(window)
        self.close_reason: str = ""
        self.closed = asyncio.Event()
        # Consistency proofs (client/heads.py): the `known` size added to the requests
        # whose replies carry a tree head, and the check of each such reply, made here
        # in arrival order, before whoever waits for it wakes up.
        self.known: Callable[[], int | None] | None = None
        self.known_requests: frozenset[str] = frozenset()
        self.check_head: Callable[[Mapping[str, Any]], None] | None = None
        self._refusal: asyncio.Future[Any] | None = None
        self._reader = asyncio.create_task(self._read())

    def set_window(self, size: int) -> None:
        """Requests in flight at once (the box's max_in_flight from its hello)."""
        self._window = asyncio.Semaphore(max(1, size))

    def next_id(self) -> int:
        return next(self._ids)

    async def send(self, frame: Frame) -> None:
        if self.closed.is_set():
            raise ConnectionLost(self.close_reason or "the connection is closed")
        try:
            await self.outbox.send(_encoded(frame))
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionLost(str(exc)) from exc

    async def request(self, frame_type: str, body: Mapping[str, Any]) -> Frame:
        """Send a request and wait for the frame that answers it (BoxError for `error`)."""
        if self.known is not None and frame_type in self.known_requests:
            known = self.known()
            if known is not None:
                body = {**body, "known": known}
        async with self._window:
            request_id = self.next_id()
            future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            try:
                await self.send(Frame(frame_type, request_id, body))
                return await future
            finally:
                self._pending.pop(request_id, None)

    def watch(self) -> tuple[int, asyncio.Future[Frame]]:
        """An id whose only possible answer is an error (e.g. for blob_chunk frames)."""
        request_id = self.next_id()
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return request_id, future

    def unwatch(self, request_id: int) -> None:
        """Stop watching `request_id`. An error it caught and nobody awaited is retrieved
        here (the caller is already raising its own, e.g. ConnectionLost from `send`), so
        asyncio does not log "Future exception was never retrieved"."""
        future = self._pending.pop(request_id, None)
        if future is None:
            return
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()

    async def stream(self, frame_type: str, body: Mapping[str, Any]) -> AsyncGenerator[Frame, None]:
        """Send a request answered by several frames with its id (blob_data); yield them.

        At most STREAM_FRAMES frames wait for the caller: beyond that the link stops
        reading the connection until the caller takes one (so do not wait for another
        reply of this link while frames of the stream are left untaken). Close the
        iterator (`contextlib.aclosing`) when leaving it early.
        """
        request_id = self.next_id()
        frames: StreamBuffer[Frame] = StreamBuffer()
        self._streams[request_id] = frames
        try:
            await self.send(Frame(frame_type, request_id, body))
            while True:
                frame = await frames.get()
                if frame is None:
                    raise ConnectionLost(self.close_reason or "the connection closed")
                if frame.type == "error":
                    raise _error_of(frame)
                yield frame
        finally:
            self._streams.pop(request_id, None)
            frames.abandon()  # a reader waiting for room must not wait for us forever

    async def _read(self) -> None:
        refused = False  # the box broke the channel: close with 4400 (protocol.md §10.2)
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.BINARY:
                    self.close_reason = (
                        self.close_reason  # set when this phone refused the box
                        or f"closed by the box ({self.ws.close_code}): {msg.extra}"
                    )
                    return
                # Views of the decrypted message: a blob_data frame's piece reaches the
                # download's hash and disk without being copied (SecureChannel.open_views).
                for raw in self._channel.open_views(bytes(msg.data)):
                    frame = self._stream_frame(raw) if self._streams else None
                    if frame is None:
                        frame = _decoded(bytes(raw))
                        if frame is None:
                            continue
                    stream = self._streams.get(frame.id)
                    if stream is not None:
                        # Back-pressure: with the stream's buffer full, wait (reading no
                        # more from the socket, so TCP slows the box) rather than buffer.
                        await stream.put(frame)
                    else:
                        self._dispatch(frame)
        except (NoiseError, ChannelError) as exc:
            self.close_reason = f"the box's transport message was rejected: {exc}"
            refused = True
        except (ConnectionError, asyncio.CancelledError, aiohttp.ClientError) as exc:
            self.close_reason = f"connection lost: {exc!r}"
        finally:
            self.closed.set()
            lost = ConnectionLost(self.close_reason or "the connection closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            for stream in self._streams.values():
                stream.end()
            with contextlib.suppress(Exception):
                if refused:
                    await self.ws.close(code=CloseCode.PROTOCOL, message=b"transport refused")
                else:
                    await self.ws.close()

    def _stream_frame(self, raw: memoryview) -> Frame | None:
        """A blob_data frame of a stream being read, recognised by its exact canonical
        bytes (peer/blob_frames.py: what decode_frame accepts, ~20 µs less per 64 KiB);
        None for anything else, which decode_frame then checks."""
        fields = parse_blob_data(raw)
        if fields is None or fields.request_id not in self._streams:
            return None
        body = {"offset": fields.offset, "data": fields.data, "end": fields.end}
        return Frame("blob_data", fields.request_id, body)

    def _dispatch(self, frame: Frame) -> None:
        future = self._pending.get(frame.id) if frame.id else None
        if self.check_head is not None and "tree_head" in frame.body and frame.type != "paired":
            try:
                self.check_head(frame.body)
            except Exception as exc:  # a forked log: this reply and the link are refused
                if future is not None and not future.done():
                    future.set_exception(exc)
                self.close_reason = str(exc)
                self._refusal = asyncio.ensure_future(self.ws.close())
                return
        if future is None or future.done():
            self._on_frame(frame)
        elif frame.type == "error":
            future.set_exception(_error_of(frame))
        else:
            future.set_result(frame)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        with contextlib.suppress(BaseException):
            await self._reader

    def drop(self) -> None:
        """Cut the TCP connection without a goodbye (tests: a phone losing its network)."""
        sock = self.ws.get_extra_info("socket")  # an asyncio TransportSocket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _decoded(raw: bytes) -> Frame | None:
    """The frame in `raw` (None: malformed, logged and ignored). A record's ack is
    recognised by its exact bytes (peer/ack_frames.py: the Frame decode_frame reads,
    ~20 µs less an ack); anything else goes through decode_frame's full check."""
    frame = parse_ack(raw) if len(raw) <= MAX_FRAME_BYTES else None
    if frame is not None:
        return frame
    try:
        return decode_frame(raw, Direction.TO_PHONE, max_bytes=MAX_FRAME_BYTES)
    except FrameError as exc:
        log.warning("ignoring a malformed frame from the box: %s", exc.message)
        return None


def _encoded(frame: Frame) -> bytes:
    """encode_frame's bytes; an upload's blob_chunk frames written around their piece
    (peer/blob_frames.py: the same canonical bytes without cbor2 per 64 KiB), and
    pushes from their template (peer/push_frames.py: ~3 µs less a record)."""
    body = frame.body
    if frame.type == "push" and 2 <= len(body) <= 3 and 0 <= frame.id < 2**64:
        record, sig, known = body.get("record"), body.get("sig"), body.get("known")
        if (
            type(record) is bytes
            and type(sig) is bytes
            and len(sig) == 64
            and len(body) == (2 if known is None else 3)
            and (known is None or (type(known) is int and 0 <= known < 2**64))
        ):
            return push_bytes(frame.id, record, sig, known)
    if frame.type == "blob_chunk" and len(body) == 2:
        offset, data = body.get("offset"), body.get("data")
        if type(offset) is int and 0 <= offset < 2**64 and type(data) is bytes:
            before, after = blob_chunk_parts(frame.id, offset, len(data))
            return b"".join((before, data, after))
    return encode_frame(frame)


async def open_link(
    http: aiohttp.ClientSession,
    url: str,
    kind: HandshakeKind,
    noise_private: bytes,
    on_frame: Callable[[Frame], None],
    *,
    box_noise_public: bytes | None = None,
    psk: bytes | None = None,
    expected_fingerprint: str | None = None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> Link:
    """Connect to `url` and run the handshake; the Link is ready for frames."""
    ws = await http.ws_connect(url, max_msg_size=WS_MAX_MSG_SIZE, autoping=True)
    try:
        hs = initiator(kind, noise_private, box_noise_public, psk)
        await ws.send_bytes(bytes([kind.value]) + hs.write_message(b""))
        reply = await ws.receive()
        if reply.type != aiohttp.WSMsgType.BINARY:
            raise HandshakeRefused(ws.close_code, str(reply.extra or "connection closed"))
        box_sign, commitment = parse_box_payload(hs.read_message(bytes(reply.data)))
        box_noise = hs.remote_static
        assert box_noise is not None
        if expected_fingerprint is not None:
            if compute_fingerprint(box_noise, box_sign) != expected_fingerprint:
                raise FingerprintMismatch("the box's keys do not match the expected fingerprint")
        phone_nonce = None
        if kind is not HandshakeKind.IK:
            phone_nonce = new_code_nonce()
            await ws.send_bytes(hs.write_message(phone_payload(phone_nonce)))
        handshake = Handshake(kind, hs.handshake_hash, box_noise, box_sign, commitment, phone_nonce)
        channel = SecureChannel(TransportSession.from_handshake(hs), max_frame_bytes)
    except BaseException:
        await ws.close()
        raise
    return Link(ws, channel, handshake, on_frame)
