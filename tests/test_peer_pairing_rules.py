"""protocol.md §3.4 as written: the button-pairing rules and the `reveal` frame,
exercised by the reference client over real Noise XX against a box on loopback
whose pairing gate is the real PairingService (its clock moved by the test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from peer_helpers import RunningBox, message, paired_phone, running_box, start_box
from protocol_doc import rule
from strongroom.client import BoxError, DeviceState, PhoneClient
from strongroom.client.link import open_link
from strongroom.pairing.codes import verify_code_commitment
from strongroom.pairing.service import PairingService
from strongroom.peer.frames import Frame
from strongroom.peer.handshake import HandshakeKind
from support.clock import Clock

box = pytest.fixture(running_box)


@pytest.fixture
async def clock() -> Clock:
    return Clock(1_000_000.0)  # fixed: it moves only when a test says so


@pytest.fixture
async def rules_box(tmp_path: Path, clock: Clock) -> AsyncIterator[RunningBox]:
    running = await start_box(tmp_path / "box", gate=PairingService(clock))  # type: ignore[arg-type]
    yield running
    await running.stop()


def _service(box: RunningBox) -> PairingService:
    gate = box.gate
    assert isinstance(gate, PairingService)
    return gate


async def _pair(box: RunningBox, phone: PhoneClient) -> asyncio.Task[object]:
    """Start a button pairing; it waits at the box for a confirmation."""
    return asyncio.create_task(phone.pair_button(box.url, box.keys.fingerprint))


async def _refused(box: RunningBox, phone: PhoneClient) -> str | None:
    with pytest.raises(BoxError) as refused:
        await asyncio.wait_for(phone.pair_button(box.url, box.keys.fingerprint), 10)
    assert refused.value.code == "pairing-refused"
    return refused.value.reason


async def _pending(box: RunningBox) -> None:
    for _ in range(200):
        if _service(box).status().pending is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no pending attempt")


async def test_an_unknown_phone_seen_before_the_press_makes_an_overlap(
    rules_box: RunningBox, clock: Clock
) -> None:
    rule("those that completed one in the 120 s before the press")
    early = PhoneClient(DeviceState.generate("Pixel", "claire"))
    assert await _refused(rules_box, early) == "no-window"  # tried before the press
    clock.now += 100  # less than 120 s later
    _service(rules_box).press()
    other = PhoneClient(DeviceState.generate("iPhone", "paul"))
    assert await _refused(rules_box, other) == "overlap"
    # The window closed; the first phone is refused too while the overlap shows.
    assert await _refused(rules_box, early) == "overlap"
    assert rules_box.count("SELECT count(*) FROM devices") == 0
    await early.close()
    await other.close()


async def test_a_contact_older_than_120_s_before_the_press_does_not_count(
    rules_box: RunningBox, clock: Clock
) -> None:
    rule("those that completed one in the 120 s before the press")
    early = PhoneClient(DeviceState.generate("Pixel", "claire"))
    assert await _refused(rules_box, early) == "no-window"
    clock.now += 121
    _service(rules_box).press()
    phone = PhoneClient(DeviceState.generate("iPhone", "paul"))
    attempt = await _pair(rules_box, phone)
    await _pending(rules_box)
    _service(rules_box).press()  # confirms it
    await asyncio.wait_for(attempt, 10)
    assert phone.state.paired
    await early.close()
    await phone.close()


async def test_a_phone_retrying_with_the_same_key_is_one_phone_and_a_new_key_is_two(
    rules_box: RunningBox, clock: Clock
) -> None:
    rule("A phone **MUST** therefore keep the same Noise static key across pairing retries")
    state = DeviceState.generate("Pixel", "claire")
    phone = PhoneClient(state)
    assert await _refused(rules_box, phone) == "no-window"
    clock.now += 30
    _service(rules_box).press()
    attempt = await _pair(rules_box, phone)  # same key: not an overlap
    await _pending(rules_box)
    _service(rules_box).press()
    await asyncio.wait_for(attempt, 10)
    assert phone.state.paired
    await phone.close()

    # Another phone that retries with fresh keys after the press is two phones.
    clock.now += 300
    first_try = PhoneClient(DeviceState.generate("iPhone", "paul"))
    assert await _refused(rules_box, first_try) == "no-window"
    clock.now += 30
    _service(rules_box).press()
    new_keys = PhoneClient(DeviceState.generate("iPhone", "paul"))
    assert await _refused(rules_box, new_keys) == "overlap"
    assert rules_box.count("SELECT count(*) FROM devices") == 1
    await first_try.close()
    await new_keys.close()


async def test_a_second_press_with_nothing_pending_closes_the_window(
    rules_box: RunningBox,
) -> None:
    rule("A second press with **nothing pending closes the window**")
    service = _service(rules_box)
    service.press()
    assert service.status().open
    service.press()
    assert not service.status().open
    phone = PhoneClient(DeviceState.generate("Pixel", "claire"))
    assert await _refused(rules_box, phone) == "no-window"
    assert rules_box.count("SELECT count(*) FROM devices") == 0
    await phone.close()


async def test_a_second_press_with_an_attempt_pending_confirms_it(rules_box: RunningBox) -> None:
    rule("A second press while an attempt is pending confirms that attempt")
    _service(rules_box).press()
    phone = PhoneClient(DeviceState.generate("Pixel", "claire"))
    attempt = await _pair(rules_box, phone)
    await _pending(rules_box)
    _service(rules_box).press()
    await asyncio.wait_for(attempt, 10)
    ack = await phone.push(message("bonjour"))
    assert ack.log_index > 0
    await phone.close()


async def test_a_paired_phone_over_xx_gets_reveal_then_a_ready_session(box: RunningBox) -> None:
    rule("the box still sends `reveal` first, as after every XX and XXpsk3 handshake")
    phone = await paired_phone(box, "claire")
    await phone.close()
    frames: list[Frame] = []
    async with aiohttp.ClientSession() as http:
        link = await open_link(
            http, box.url, HandshakeKind.XX, phone.state.noise_private, frames.append
        )
        hello = await link.request("hello", {"name": "Pixel", "app": "test", "caps": []})
        # The box revealed its committed nonce first, id 0, before anything else.
        assert [f.type for f in frames] == ["reveal"] and frames[0].id == 0
        commitment = link.handshake.code_commitment
        assert commitment is not None and verify_code_commitment(
            commitment, frames[0].body["nonce"]
        )
        # ... and the session is ready as the paired device at once.
        assert hello.body["device"] == phone.state.device_id
        raw, sig = phone.sign(message("par XX"))
        ack = await link.request("push", {"record": raw, "sig": sig})
        assert ack.type == "ack"
        with pytest.raises(BoxError) as refused:
            await link.request(
                "pair", {"name": "x", "owner": "y", "sign_key": bytes(32), "sig": bytes(64)}
            )
        assert refused.value.code == "malformed"
        await link.close()
    assert box.count("SELECT count(*) FROM devices") == 1
