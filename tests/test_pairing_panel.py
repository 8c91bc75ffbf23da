"""The PAIR button and the LEDs (gpiozero MockFactory pins) wired to the PairingService the way
the box does it: press -> window -> blinking; one phone -> success; two -> overlap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from math import isclose

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from strongroom.pairing.codes import comparison_code
from strongroom.pairing.events import PairingStatus
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome, Refusal
from strongroom.pairing.service import PairingService
from strongroom_panel.panel import FrontPanel
from strongroom_panel.patterns import Blink, Off, Steady, leds_for
from strongroom_panel.pins import PanelPins
from strongroom_panel.state import (
    RESULT_SHOWN_FOR_S,
    BoxState,
    PairingResult,
    PanelInputs,
    derive_state,
)
from support.clock import Clock
from support.wait import until  # LED lines change on gpiozero's threads: polled

PINS = PanelPins()
LED_LINES = {"status": PINS.status, "pairing": PINS.pairing, "alert": PINS.alert}


def phone(n: int) -> PairingAttempt:
    handshake_hash = bytes([n]) * 64
    return PairingAttempt(
        method=PairingMethod.BUTTON,
        noise_key=bytes([n]) * 32,
        sign_key=bytes([n + 100]) * 32,
        device_name=f"phone {n}",
        owner="me.bernard",
        handshake_hash=handshake_hash,
        comparison_code=comparison_code(handshake_hash),
    )


def panel_inputs(status: PairingStatus) -> PanelInputs:
    """The box glue's mapping from the pairing status to the panel's facts.

    The panel ranks a recent result above an open window; a new press supersedes the
    old result, so the result is only passed on while no window is open. The overlap
    itself travels in `overlap` (raised until the next press, cancel, or 60 s).
    """
    last = None if status.open else status.last_result
    result: PairingResult | None = None
    if last is not None and last.accepted:
        result = PairingResult.PAIRED
    return PanelInputs(
        now=status.now,
        pairing_window_open=status.open,
        pairing_seconds_left=status.seconds_left,
        last_pairing_result=result,
        last_pairing_at=None if last is None else last.at,
        overlap=status.overlap,
    )


@dataclass
class PanelRig:
    """The pairing service and the front panel wired as the runtime wires them (no archive)."""

    clock: Clock
    factory: MockFactory
    service: PairingService
    panel: FrontPanel

    def refresh(self) -> None:
        self.panel.show(derive_state(panel_inputs(self.service.status())))

    def press_pair_button(self) -> None:
        button = self.factory.pin(PINS.button)
        button.drive_low()
        self.clock.now += 0.3  # a person's press, on the panel's clock
        button.drive_high()

    def led(self, role: str) -> MockPWMPin:
        pin = self.factory.pin(LED_LINES[role])
        assert isinstance(pin, MockPWMPin)
        return pin


@pytest.fixture
async def box() -> AsyncIterator[PanelRig]:
    loop = asyncio.get_running_loop()
    clock = Clock(50_000.0)
    factory = MockFactory(pin_class=MockPWMPin)
    refresh: list[Callable[[], None]] = []
    service = PairingService(clock, on_change=lambda: refresh[0]())

    def on_pair_press() -> None:
        # gpiozero calls back on its own threads: the box hops onto the loop, as here.
        loop.call_soon_threadsafe(service.press)

    panel = FrontPanel(
        PINS, rgb=False, clock=clock, on_pair_press=on_pair_press, pin_factory=factory
    )
    the_box = PanelRig(clock, factory, service, panel)
    refresh.append(the_box.refresh)
    the_box.refresh()
    try:
        yield the_box
    finally:
        panel.close()
        factory.reset()


def reads(pin: MockPWMPin, level: float) -> Callable[[], bool]:
    return lambda: bool(pin.state == level)


async def assert_leds_show(box: PanelRig, state: BoxState) -> None:
    """Every LED does what `leds_for(state)` says: dark, steady, or blinking on and off."""
    assert box.panel.state is state
    pattern = leds_for(state)
    expected = {"status": pattern.status, "pairing": pattern.pairing, "alert": pattern.alert}
    for role, led_pattern in expected.items():
        pin = box.led(role)
        if isinstance(led_pattern, Off):
            assert pin.state == 0.0, role
        elif isinstance(led_pattern, Steady):
            assert isclose(pin.state, led_pattern.brightness), role
        else:
            assert isinstance(led_pattern, Blink), role
            for level in (1.0, 0.0, 1.0):  # lit, dark, lit again: it blinks
                await until(reads(pin, level))


async def test_press_blinks_then_one_phone_pairs_and_the_led_says_so(box: PanelRig) -> None:
    await assert_leds_show(box, BoxState.READY)
    box.press_pair_button()
    await until(lambda: box.service.status().open)
    assert derive_state(panel_inputs(box.service.status())) is BoxState.PAIRING_OPEN
    await assert_leds_show(box, BoxState.PAIRING_OPEN)

    request = asyncio.create_task(box.service.request(phone(1)))
    await until(lambda: box.service.status().pending is not None)
    await assert_leds_show(box, BoxState.PAIRING_OPEN)  # still waiting for the admin
    box.press_pair_button()  # second press: the admin confirms at the box
    assert await asyncio.wait_for(request, 5.0) == PairingOutcome.accept()
    await assert_leds_show(box, BoxState.PAIRED_OK)

    box.clock.now += RESULT_SHOWN_FOR_S
    box.refresh()  # the box refreshes the panel every second
    await assert_leds_show(box, BoxState.READY)


async def test_two_phones_in_one_window_show_overlap(box: PanelRig) -> None:
    box.press_pair_button()
    await until(lambda: box.service.status().open)
    first = asyncio.create_task(box.service.request(phone(1)))
    await until(lambda: box.service.status().pending is not None)
    assert await box.service.request(phone(2)) == PairingOutcome.refuse(Refusal.OVERLAP)
    assert await asyncio.wait_for(first, 5.0) == PairingOutcome.refuse(Refusal.OVERLAP)
    await assert_leds_show(box, BoxState.OVERLAP)

    box.press_pair_button()  # try again: a fresh window, no overlap shown any more
    await until(lambda: box.service.status().open)
    await assert_leds_show(box, BoxState.PAIRING_OPEN)


async def test_pressing_right_after_a_pairing_blinks_again(box: PanelRig) -> None:
    box.press_pair_button()
    await until(lambda: box.service.status().open)
    request = asyncio.create_task(box.service.request(phone(1)))
    await until(lambda: box.service.status().pending is not None)
    box.press_pair_button()
    assert await asyncio.wait_for(request, 5.0) == PairingOutcome.accept()
    await assert_leds_show(box, BoxState.PAIRED_OK)
    box.press_pair_button()  # the next colleague's phone, a few seconds later
    await until(lambda: box.service.status().open)
    await assert_leds_show(box, BoxState.PAIRING_OPEN)


async def test_window_expiry_and_press_to_cancel_turn_the_blinking_off(box: PanelRig) -> None:
    box.press_pair_button()
    await until(lambda: box.service.status().open)
    box.clock.now += 120.0
    box.service.tick()
    await assert_leds_show(box, BoxState.READY)

    box.press_pair_button()
    await until(lambda: box.service.status().open)
    await assert_leds_show(box, BoxState.PAIRING_OPEN)
    box.press_pair_button()
    await until(lambda: not box.service.status().open)
    await assert_leds_show(box, BoxState.READY)
