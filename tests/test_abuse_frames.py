"""Abuse inside the encrypted channel: oversized frames, a revoked key, replayed messages.

The box runs as a real process with small limits; a phone driven by hand
(RawSession) captures its own handshake and transport messages and plays
them back. Each time the box must refuse, close, and write nothing.
"""

from __future__ import annotations

import asyncio

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
from strongroom.client.link import HandshakeRefused
from strongroom.control import call

PROTOCOL_CLOSE = 4400
TOO_BIG_CLOSE = 1009  # WebSocket "message too big"


box = pytest.fixture(abuse_box)


def archive_size(box: BoxProcess) -> tuple[int, int]:
    return (
        count(box.data_dir, "SELECT count(*) FROM records"),
        count(box.data_dir, "SELECT count(*) FROM log_leaves"),
    )


async def test_oversized_frames_close_the_session_and_leave_the_archive_unchanged(
    box: BoxProcess,
) -> None:
    phone = await pair_phone(box, "claire")
    abuser = await pair_phone(box, "mallory", "abuser")
    await abuser.close()
    before = archive_size(box)
    try:
        async with aiohttp.ClientSession() as http:
            # A frame over max_frame_bytes, split into valid Noise messages.
            session = await RawSession.open(http, box.peer_url, abuser.state)
            raw, sig = abuser.sign(message(1, "x" * (ABUSE_LIMITS["max_frame_bytes"] + 1000)))
            await session.send_all(session.seal("push", {"record": raw, "sig": sig}))
            assert await session.wait_closed() == PROTOCOL_CLOSE
            # One WebSocket message over the Noise maximum of 65,535 bytes.
            session = await RawSession.open(http, box.peer_url, abuser.state)
            await session.ws.send_bytes(b"\x00" * 70_000)
            assert await session.wait_closed() == TOO_BIG_CLOSE
        await still_served(phone, 2)
    finally:
        await phone.close()
    records, leaves = archive_size(box)
    assert (records, leaves) == (before[0] + 1, before[1] + 1)  # only the bystander's push


async def test_a_revoked_key_is_refused_every_time_it_retries(box: BoxProcess) -> None:
    phone = await pair_phone(box, "claire")
    lost = await pair_phone(box, "claire", "lost phone")
    assert lost.state.device_id is not None
    status, body = await call(box.data_dir, "POST", f"/revoke/{lost.state.device_id}")
    assert status == 200 and body == {"revoked": True}
    await asyncio.sleep(0.2)
    assert not lost.connected, "the revoked phone's open session was not closed"
    await lost.close()
    records = count(box.data_dir, "SELECT count(*) FROM records")
    try:
        for n in range(10):
            with pytest.raises(HandshakeRefused) as refused:
                await asyncio.wait_for(lost.connect(box.peer_url), SERVED_WITHIN_S)
            assert refused.value.code == 4403
            if n % 5 == 0:
                await still_served(phone, n)
    finally:
        await lost.close()
        await phone.close()
    # Only the bystander's two pushes were stored: ten refused retries wrote no record.
    assert count(box.data_dir, "SELECT count(*) FROM records") == records + 2


async def test_replayed_handshake_and_transport_messages_are_refused_and_write_nothing(
    box: BoxProcess,
) -> None:
    phone = await pair_phone(box, "claire")
    await phone.close()
    async with aiohttp.ClientSession() as http:
        # A genuine session, recorded by an eavesdropper on the LAN.
        genuine = await RawSession.open(http, box.peer_url, phone.state)
        hello = genuine.seal("hello", {"name": "Pixel", "app": "test", "caps": []})
        raw, sig = phone.sign(message(1, "virement de 10 000 €"))
        push = genuine.seal("push", {"record": raw, "sig": sig})
        await genuine.send_all(hello)
        assert (await genuine.receive_frame()).type == "hello"  # type: ignore[union-attr]
        await genuine.send_all(push)
        ack = await genuine.receive_frame()
        assert ack is not None and ack.type == "ack"
        # Replayed inside the same session: the nonce is old, the box hangs up.
        await genuine.send_all(push)
        assert await genuine.wait_closed() == PROTOCOL_CLOSE
        after_genuine = archive_size(box)

        # Handshake message 1 replayed on a new connection: the box answers with a fresh
        # ephemeral key, so the recorded transport messages no longer authenticate.
        for _ in range(3):
            replay = await RawSession.open(
                http, box.peer_url, phone.state, first_message=genuine.first_message
            )
            await replay.send_all(hello + push)
            assert await replay.wait_closed() == PROTOCOL_CLOSE
    assert archive_size(box) == after_genuine
    assert count(box.data_dir, "SELECT count(*) FROM records") == 1
