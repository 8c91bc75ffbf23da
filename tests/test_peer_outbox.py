"""The outbox: frames leave in order, bundled when allowed, and senders feel back-pressure."""

from __future__ import annotations

import asyncio
import os

import pytest

from strongroom.noise import HandshakeState, TransportSession
from strongroom.peer.channel import SecureChannel
from strongroom.peer.handshake import HandshakeKind, initiator, responder
from strongroom.peer.outbox import Outbox


def _channel_pair() -> tuple[SecureChannel, SecureChannel]:
    phone: HandshakeState = initiator(HandshakeKind.XX, os.urandom(32))
    box: HandshakeState = responder(HandshakeKind.XX, os.urandom(32), None)
    box.read_message(phone.write_message())
    phone.read_message(box.write_message())
    box.read_message(phone.write_message())
    return (
        SecureChannel(TransportSession.from_handshake(phone), 1 << 20),
        SecureChannel(TransportSession.from_handshake(box), 1 << 20),
    )


class Wire:
    """A socket stand-in: records messages; `gate` cleared means the peer stopped reading."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail: Exception | None = None

    async def write(self, message: bytes) -> None:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.messages.append(message)


async def test_without_bundles_every_frame_is_its_own_message_in_order() -> None:
    sender, receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    frames = [f"frame {i}".encode() for i in range(5)]
    await asyncio.gather(*(outbox.send(f) for f in frames))
    assert len(wire.messages) == 5
    assert [f for m in wire.messages for f in receiver.open(m)] == frames


async def test_frames_sent_in_one_loop_turn_leave_as_one_bundle_in_order() -> None:
    sender, receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    outbox.bundling = True
    frames = [os.urandom(100 + i) for i in range(20)]
    await asyncio.gather(*(outbox.send(f) for f in frames))
    assert len(wire.messages) == 1
    assert receiver.open(wire.messages[0]) == frames
    # Later frames keep the order and the channel's nonces stay in step.
    await outbox.send(b"later")
    assert receiver.open(wire.messages[1]) == [b"later"]


async def test_senders_wait_until_their_frame_is_written() -> None:
    sender, receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    outbox.bundling = True
    wire.gate.clear()  # the peer stops reading
    sends = [asyncio.create_task(outbox.send(os.urandom(10))) for _ in range(8)]
    await asyncio.sleep(0.05)
    assert not any(s.done() for s in sends)  # nobody is told "sent" while it is not
    wire.gate.set()
    await asyncio.wait_for(asyncio.gather(*sends), 2)
    assert sum(len(receiver.open(m)) for m in wire.messages) == 8


async def test_a_failed_write_fails_every_sender_of_that_bundle() -> None:
    sender, _ = _channel_pair()
    wire = Wire()
    wire.fail = ConnectionResetError("gone")
    outbox = Outbox(sender, wire.write)
    outbox.bundling = True
    results = await asyncio.gather(*(outbox.send(b"x") for _ in range(4)), return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results)


async def test_a_cancelled_first_sender_does_not_strand_the_others() -> None:
    sender, receiver = _channel_pair()
    wire = Wire()
    outbox = Outbox(sender, wire.write)
    outbox.bundling = True
    first = asyncio.create_task(outbox.send(b"first"))
    await asyncio.sleep(0)  # first is now waiting its loop turn
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(outbox.send(b"second"), 2)
    assert [f for m in wire.messages for f in receiver.open(m)] == [b"first", b"second"]
