"""The ingest row's phones (bench_peer.bench_ingest): a load generator, not the reference client.

Ten phones share the machine's two cores with the box, so what they spend per record
is taken from the box's row. Each phone pairs with the reference client
(`PhoneClient.pair_button`), then opens an IK session of its own and pushes records
signed before the timed window, with the reference client's bytes: the same hello
caps ("bundles", "consistency", "mail", "reach"), the same push frames
(`push_frames.push_bytes`, its `known` head included), sealed and bundled per loop
turn by the same `Outbox`. The box receives, decrypts, checks and commits every
record as from a real phone and answers each with the same ack (inclusion proof,
signed head, consistency proof).

What a bench phone does not do is check those acks: it reads each one's request id
from its last bytes (a record's ack is canonical CBOR ending `"t": "ack", "id": N`:
peer/ack_frames.py) and takes the time; any other frame (an `error`) ends the run
with the frame decoded. The reference client checks every ack's inclusion proof,
head signature and consistency proof (client/proofs.py, client/heads.py); the
restore rows measure it. Until 2026-12-06 (session 12) the bench phones were
PhoneClients: 70-80 µs of the shared cores per record, over half of it their checks
of the acks and a future and a task per push; these spend about a third of that.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from strongroom.client import PhoneClient
from strongroom.client.phone_session import HELLO_CAPS
from strongroom.noise import TransportSession
from strongroom.peer.ack_frames import ACK_TYPE_AND_ID
from strongroom.peer.blob_frames import read_uint
from strongroom.peer.channel import WS_MAX_MSG_SIZE, SecureChannel
from strongroom.peer.frames import Direction, Frame, decode_frame, encode_frame
from strongroom.peer.handshake import HandshakeKind, initiator, parse_box_payload
from strongroom.peer.outbox import Outbox
from strongroom.peer.push_frames import push_bytes
from strongroom.peer.request_id import MAX_REQUEST_ID

MAX_FRAME_BYTES = 1024 * 1024
_LONGEST_ID = 9  # a uint head and 8 bytes


def ack_id(raw: bytes) -> int | None:
    """The request id of a record's ack, read from its last bytes; None for any other
    frame (an error, a mail, anything the box sends on its own)."""
    at = raw.rfind(ACK_TYPE_AND_ID, max(0, len(raw) - len(ACK_TYPE_AND_ID) - _LONGEST_ID))
    if at < 0 or not raw.startswith(b"\xa3\x61b"):
        return None
    found = read_uint(raw, at + len(ACK_TYPE_AND_ID), MAX_REQUEST_ID)
    if found is None or found[1] != len(raw):
        return None
    return found[0]


Signed = tuple[bytes, bytes]  # (record bytes, signature)


class BenchPhone:
    """One phone's own IK session: pushes in, request ids of the acks out."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, channel: SecureChannel) -> None:
        self._ws = ws
        self._channel = channel
        self._outbox = Outbox(channel, ws.send_bytes)
        self._ids = itertools.count(1)
        self._sent: dict[int, float] = {}  # request id -> when its push was queued
        self._writing: asyncio.Future[None] | None = None
        self.window = 1
        self.known: int | None = None
        self._pushing = False

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, client: PhoneClient
    ) -> BenchPhone:
        """An IK session as the paired `client`'s device, its hello answered."""
        state = client.state
        assert state.box_noise_public is not None
        ws = await http.ws_connect(url, max_msg_size=WS_MAX_MSG_SIZE, autoping=True)
        hs = initiator(HandshakeKind.IK, state.noise_private, state.box_noise_public, None)
        await ws.send_bytes(bytes([HandshakeKind.IK.value]) + hs.write_message(b""))
        reply = await ws.receive()
        if reply.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"the box refused the bench phone: {reply.extra}")
        parse_box_payload(hs.read_message(bytes(reply.data)))
        phone = cls(ws, SecureChannel(TransportSession.from_handshake(hs), MAX_FRAME_BYTES))
        if state.last_head is not None:
            phone.known = int(state.last_head["tree_size"])
        await phone._hello(state.name)
        return phone

    async def _hello(self, name: str) -> None:
        body = {"name": name, "app": "strongroom-bench-phone/1", "caps": list(HELLO_CAPS)}
        await self._outbox.send(encode_frame(Frame("hello", next(self._ids), body)))
        (reply,) = await self._frames()
        hello = decode_frame(reply, Direction.TO_PHONE, max_bytes=MAX_FRAME_BYTES)
        if hello.type != "hello":
            raise RuntimeError(f"the box answered hello with {hello.type}: {hello.body}")
        self._outbox.bundling = "bundles" in hello.body["caps"]
        self.window = int(hello.body["limits"]["max_in_flight"])

    async def _frames(self) -> list[bytes]:
        msg = await self._ws.receive()
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"the box closed a bench phone's session: {msg.extra}")
        return self._channel.open(bytes(msg.data))

    def push(self, signed: Signed) -> None:
        """Queue one push now (it leaves with the others of this loop turn)."""
        request_id = next(self._ids)
        self._sent[request_id] = time.perf_counter()
        written = self._outbox.queue(push_bytes(request_id, signed[0], signed[1], self.known))
        if written is not self._writing:  # the pushes of one flush share its future
            self._writing = written
            written.add_done_callback(_retrieved)

    async def run(
        self,
        next_record: Callable[[], Signed],
        deadline: float,
        every: float | None,
        latencies: list[float],
    ) -> None:
        """Push until `deadline`: `window` in flight, a new one per ack (every=None), or
        one each `every` seconds; then wait for the last acks. Each ack's latency (queued
        to read) goes to `latencies`."""
        self._pushing = True
        reader = asyncio.ensure_future(self._read(next_record, deadline, every is None, latencies))
        try:
            if every is None:
                for _ in range(self.window):
                    self.push(next_record())
            else:
                next_at = time.perf_counter()
                while next_at < deadline and not reader.done():
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    self.push(next_record())
                    next_at += every
            self._pushing = False  # from now on only the reader pushes (saturated)
            if self._sent or reader.done():
                await reader
        finally:
            reader.cancel()

    async def _read(
        self,
        next_record: Callable[[], Signed],
        deadline: float,
        refill: bool,
        latencies: list[float],
    ) -> None:
        while self._pushing or self._sent:
            for raw in await self._frames():
                request_id = ack_id(raw)
                queued = None if request_id is None else self._sent.pop(request_id, None)
                if queued is None:
                    frame = decode_frame(raw, Direction.TO_PHONE, max_bytes=MAX_FRAME_BYTES)
                    raise RuntimeError(f"a bench phone got {frame.type}: {frame.body}")
                now = time.perf_counter()
                latencies.append(now - queued)
                if refill and now < deadline:
                    self.push(next_record())

    async def close(self) -> None:
        await self._ws.close()


def _retrieved(written: asyncio.Future[Any]) -> None:
    if not written.cancelled():
        written.exception()  # a lost connection shows as the reader's error instead
