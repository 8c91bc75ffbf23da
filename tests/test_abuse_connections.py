"""Abuse at the connection level, against the box as a real process on loopback.

Small limits (8 connections, 1 s handshake timeout, 2 s idle timeout) keep the
tests fast. In each, a paired phone keeps pushing and must keep getting acks
while the abuse goes on: limits protect the box without locking out the staff.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import time

import aiohttp
import pytest

from fault_helpers import (
    ABUSE_LIMITS,
    SERVED_WITHIN_S,
    BoxProcess,
    RawSession,
    abuse_box,
    count,
    message,
    pair_phone,
    still_served,
)
from strongroom.client import DeviceState
from strongroom.client.link import HandshakeRefused

box = pytest.fixture(abuse_box)


def _host_port(box: BoxProcess) -> tuple[str, int]:
    host, port = box.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def test_a_connection_flood_is_refused_beyond_the_cap_and_the_paired_phone_is_served(
    box: BoxProcess,
) -> None:
    phone = await pair_phone(box, "claire")
    flood: list[aiohttp.ClientWebSocketResponse] = []
    refused = 0
    async with aiohttp.ClientSession() as http:
        try:
            for _ in range(3 * ABUSE_LIMITS["max_connections"]):
                try:
                    flood.append(await http.ws_connect(box.peer_url))
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 503
                    refused += 1
            # Every connection holds a slot (handshaking or not): the cap counts them all.
            assert len(flood) == ABUSE_LIMITS["max_connections"] - 1
            assert refused == 2 * ABUSE_LIMITS["max_connections"] + 1
            await still_served(phone, 1)
            # The silent ones are cut at the handshake timeout, freeing their slots.
            for ws in flood:
                msg = await ws.receive(timeout=SERVED_WITHIN_S)
                assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                assert ws.close_code == 4408
            later = await http.ws_connect(box.peer_url)
            await later.close()
            await still_served(phone, 2)
        finally:
            for ws in flood:
                await ws.close()
            await phone.close()


async def test_a_handshake_flood_from_unknown_keys_is_refused_and_writes_nothing(
    box: BoxProcess,
) -> None:
    phone = await pair_phone(box, "claire")
    await still_served(phone, 1)
    leaves = count(box.data_dir, "SELECT count(*) FROM log_leaves")
    records = count(box.data_dir, "SELECT count(*) FROM records")
    known = phone.state

    async def stranger(http: aiohttp.ClientSession) -> int | None:
        # A key never paired, that knows the box's public key (it is in the mDNS TXT).
        fake = DeviceState.generate("intrus", "mallory")
        fake.box_noise_public = known.box_noise_public
        try:
            session = await RawSession.open(http, box.peer_url, fake)
        except HandshakeRefused as exc:
            return exc.code
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status  # over the connection cap: refused too
        await session.ws.close()
        raise AssertionError("an unknown key completed an IK handshake")

    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                codes = await asyncio.wait_for(
                    asyncio.gather(*(stranger(http) for _ in range(12))), SERVED_WITHIN_S
                )
                assert set(codes) <= {4401, 503}, codes
                assert 4401 in codes
                await still_served(phone, 2)
        await still_served(phone, 3)
        pushes = 6
    finally:
        await phone.close()
    assert count(box.data_dir, "SELECT count(*) FROM records") == records + pushes
    # The phone's pushes, nothing for the 60 strangers (no device, no audit event each).
    assert count(box.data_dir, "SELECT count(*) FROM log_leaves") == leaves + pushes


def _slow_client(host: str, port: int, partial: bytes) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5)
    sock.sendall(partial)
    return sock


def _cut_by_box(socks: list[socket.socket], wait_s: float) -> list[bool]:
    """Which sockets the box gave up on within `wait_s`: closed, reset, or sent a
    WebSocket close frame (opcode 0x88) after its 101 answer."""
    deadline = time.monotonic() + wait_s
    received = [b""] * len(socks)
    cut = [False] * len(socks)
    with selectors.DefaultSelector() as selector:
        for i, sock in enumerate(socks):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        while not all(cut) and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                i = key.data
                try:
                    data = socks[i].recv(4096)
                except ConnectionResetError:
                    data = b""
                received[i] += data
                head, _, frames = received[i].partition(b"\r\n\r\n")
                if not data or (head.startswith(b"HTTP/1.1 101") and frames[:1] == b"\x88"):
                    cut[i] = True
                    selector.unregister(socks[i])
    return cut


async def test_slowloris_on_http_headers_is_cut_and_others_are_served(box: BoxProcess) -> None:
    phone = await pair_phone(box, "claire")
    host, port = _host_port(box)
    try:
        slow = [
            _slow_client(host, port, b"GET /login HTTP/1.1\r\nHost: box\r\nX-Slow: ")
            for _ in range(20)
        ]
        await still_served(phone, 1)
        async with aiohttp.ClientSession() as http:
            response = await asyncio.wait_for(http.get(f"{box.url}/login"), SERVED_WITHIN_S)
            assert response.status == 200
        # Partial headers must not hold a connection for ever (the idle timeout is 2 s).
        closed = await asyncio.to_thread(_cut_by_box, slow, 4 * ABUSE_LIMITS["idle_timeout_s"])
        for sock in slow:
            sock.close()
        assert all(closed), f"{closed.count(False)} of 20 half-sent requests still held open"
    finally:
        await phone.close()


async def test_slowloris_on_websocket_is_cut_at_the_handshake_timeout(box: BoxProcess) -> None:
    phone = await pair_phone(box, "claire")
    host, port = _host_port(box)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = (
        f"GET /peer HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    try:
        # Upgraded to WebSocket, then never a Noise message: cut at handshake_timeout_s.
        stalled = [_slow_client(host, port, upgrade) for _ in range(5)]
        await still_served(phone, 1)
        closed = await asyncio.to_thread(
            _cut_by_box, stalled, 4 * ABUSE_LIMITS["handshake_timeout_s"]
        )
        for sock in stalled:
            sock.close()
        assert all(closed), "a WebSocket without a Noise handshake was held open"
        await still_served(phone, 2)
    finally:
        await phone.close()


async def test_a_paired_phone_that_never_reads_cannot_grow_the_box_memory(
    box: BoxProcess,
) -> None:
    bystander = await pair_phone(box, "claire")
    flooder = await pair_phone(box, "mallory", "flooder")
    await flooder.close()
    try:
        await still_served(bystander, 1)
        baseline = box.rss_kib()
        sent = 0
        async with aiohttp.ClientSession() as http:
            session = await RawSession.open(http, box.peer_url, flooder.state)
            # Never read again: the box's acks pile up until TCP stops it, and then
            # the box must stop reading us instead of buffering.
            text = "x" * 16_000

            async def flood() -> None:
                nonlocal sent
                while True:
                    raw, sig = flooder.sign(message(10_000 + sent, f"{sent} {text}"))
                    await session.send_all(session.seal("push", {"record": raw, "sig": sig}))
                    sent += 1

            flooding = asyncio.create_task(flood())
            peak = baseline
            for n in range(12):
                await asyncio.sleep(0.25)
                peak = max(peak, box.rss_kib())
                if n % 4 == 0:
                    await still_served(bystander, 2 + n)
            flooding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
                await flooding
            await session.ws.close()
        assert sent > ABUSE_LIMITS["max_in_flight_frames"], "the flood never got going"
        # Unbounded buffering of 16 KB pushes would be hundreds of MiB here.
        assert peak - baseline < 48 * 1024, f"RSS grew by {(peak - baseline) // 1024} MiB"
        await still_served(bystander, 99)
    finally:
        await bystander.close()
