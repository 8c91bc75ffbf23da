"""Front panel: state priority, the pattern table, the pin config and the gpiozero device
driven through gpiozero's MockFactory (PWM-capable mock pins)."""

from __future__ import annotations

import itertools
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from math import isclose
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import given
from hypothesis import strategies as st

from strongroom_panel.panel import FrontPanel
from strongroom_panel.patterns import Blink, LedPattern, Off, Pulse, Steady, leds_for
from strongroom_panel.pins import (
    DEFAULT_HOLD_SECONDS,
    PanelConfig,
    PanelConfigError,
    PanelPins,
    load_panel_config,
    parse_panel_config,
)
from strongroom_panel.state import (
    DISK_NEARLY_FULL_PERCENT,
    RESULT_SHOWN_FOR_S,
    BoxState,
    PairingResult,
    PanelInputs,
    derive_state,
)
from support.clock import Clock
from support.wait import until_sync

REPO = Path(__file__).resolve().parents[1]
PINS = PanelPins()

# ---------------------------------------------------------------- derive_state

inputs_strategy = st.builds(
    PanelInputs,
    now=st.floats(min_value=0, max_value=1e6),
    booting=st.booleans(),
    updating=st.booleans(),
    locked=st.booleans(),
    pairing_window_open=st.booleans(),
    pairing_seconds_left=st.floats(min_value=0, max_value=120),
    last_pairing_result=st.none() | st.sampled_from(PairingResult),
    last_pairing_at=st.none() | st.floats(min_value=0, max_value=1e6),
    overlap=st.booleans(),
    error=st.none() | st.text(max_size=5),
    disk_percent=st.floats(min_value=0, max_value=100),
    backup_running=st.booleans(),
    integrity_ok=st.booleans(),
)


@given(inputs_strategy)
def test_integrity_failure_then_error_beat_everything(inputs: PanelInputs) -> None:
    state = derive_state(inputs)
    if not inputs.integrity_ok:
        assert state is BoxState.INTEGRITY_FAILURE
    elif inputs.error is not None:
        assert state is BoxState.ERROR
    elif inputs.booting:
        assert state is BoxState.BOOTING
    elif inputs.updating:  # a migration after an upgrade: busy, not "locked" or "stuck"
        assert state is BoxState.UPDATING
    elif inputs.locked:
        assert state is BoxState.LOCKED
    else:
        assert state not in {BoxState.INTEGRITY_FAILURE, BoxState.ERROR, BoxState.LOCKED}


def test_a_healthy_idle_box_is_ready() -> None:
    assert derive_state(PanelInputs(now=100.0)) is BoxState.READY


def test_pairing_states_beat_persistent_warnings() -> None:
    warn = PanelInputs(now=100.0, disk_percent=99.0, backup_running=True)
    assert derive_state(warn) is BoxState.DISK_NEARLY_FULL
    window = replace(warn, pairing_window_open=True, pairing_seconds_left=90.0)
    assert derive_state(window) is BoxState.PAIRING_OPEN
    paired = replace(warn, last_pairing_result=PairingResult.PAIRED, last_pairing_at=95.0)
    assert derive_state(paired) is BoxState.PAIRED_OK
    assert derive_state(replace(paired, overlap=True)) is BoxState.OVERLAP


def test_pairing_result_is_shown_for_a_limited_time() -> None:
    shown = PanelInputs(now=100.0, last_pairing_result=PairingResult.OVERLAP, last_pairing_at=99.0)
    assert derive_state(shown) is BoxState.OVERLAP
    later = replace(shown, now=99.0 + RESULT_SHOWN_FOR_S + 0.01)
    assert derive_state(later) is BoxState.READY


def test_expired_window_counts_as_closed() -> None:
    inputs = PanelInputs(now=1.0, pairing_window_open=True, pairing_seconds_left=0.0)
    assert derive_state(inputs) is BoxState.READY


def test_disk_threshold_and_backup() -> None:
    below = PanelInputs(now=1.0, disk_percent=DISK_NEARLY_FULL_PERCENT - 0.1)
    assert derive_state(below) is BoxState.READY
    assert derive_state(replace(below, disk_percent=DISK_NEARLY_FULL_PERCENT)) is (
        BoxState.DISK_NEARLY_FULL
    )
    assert derive_state(replace(below, backup_running=True)) is BoxState.BACKUP_RUNNING


def test_a_failed_night_job_shows_until_it_succeeds_but_pairing_comes_first() -> None:
    failed = PanelInputs(now=100.0, job_failed=True, disk_percent=99.0)
    assert derive_state(failed) is BoxState.JOB_FAILED
    window = replace(failed, pairing_window_open=True, pairing_seconds_left=90.0)
    assert derive_state(window) is BoxState.PAIRING_OPEN
    assert derive_state(replace(failed, locked=True)) is BoxState.LOCKED
    assert derive_state(replace(failed, job_failed=False)) is BoxState.DISK_NEARLY_FULL


# ---------------------------------------------------------------- leds_for


def test_every_state_looks_different_on_both_wirings() -> None:
    three = {(p.status, p.pairing, p.alert) for p in map(leds_for, BoxState)}
    rgb = {leds_for(s).rgb for s in BoxState}
    assert len(three) == len(BoxState)
    assert len(rgb) == len(BoxState)


def test_led_roles_follow_the_documented_rules() -> None:
    pairing_states = {BoxState.PAIRING_OPEN, BoxState.PAIRED_OK, BoxState.OVERLAP}
    alert_states = {
        BoxState.OVERLAP,
        BoxState.ERROR,
        BoxState.DISK_NEARLY_FULL,
        BoxState.INTEGRITY_FAILURE,
        BoxState.JOB_FAILED,
    }
    for state in BoxState:
        pattern = leds_for(state)
        assert (pattern.pairing != Off()) == (state in pairing_states), state
        assert (pattern.alert != Off()) == (state in alert_states), state
        dark = {BoxState.ERROR, BoxState.INTEGRITY_FAILURE}
        assert (pattern.status == Off()) == (state in dark), state


# ---------------------------------------------------------------- pins / config


def test_shipped_panel_toml_is_the_documented_default() -> None:
    shipped = load_panel_config(REPO / "firmware" / "panel.toml")
    assert shipped == PanelConfig()
    assert shipped.hold_seconds == DEFAULT_HOLD_SECONDS == 10.0
    doc = (REPO / "docs" / "hardware.md").read_text(encoding="utf-8")
    for role, bcm in PINS.in_use(False).items() | PINS.in_use(True).items():
        assert f"GPIO{bcm}" in doc, role


def test_missing_config_file_means_reference_wiring(tmp_path: Path) -> None:
    assert load_panel_config(tmp_path / "absent.toml") == PanelConfig()


def test_partial_config_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "panel.toml"
    path.write_text("[panel]\nrgb = true\n[pins]\nred = 12\n", encoding="utf-8")
    config = load_panel_config(path)
    assert config.rgb is True
    assert config.pins == replace(PINS, red=12)


@pytest.mark.parametrize(
    "text",
    [
        "[pins]\nbutton = 40\n",
        "[pins]\nstatus = 'GPIO23'\n",
        "[pins]\nstatus = 17\n",  # same line as the button
        "[panel]\nhold_seconds = 0\n",
        "[panel]\nrgb = 'yes'\n",
        "[pins\n",
    ],
)
def test_impossible_configs_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "panel.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PanelConfigError):
        load_panel_config(path)


def test_rgb_lines_may_reuse_unused_single_led_lines() -> None:
    data = tomllib.loads("[panel]\nrgb = true\n[pins]\nred = 23\ngreen = 24\nblue = 25\n")
    assert parse_panel_config(data).pins.in_use(True)["red"] == 23


# ---------------------------------------------------------------- FrontPanel on mock pins


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    mock = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = mock
    yield mock
    mock.reset()
    Device.pin_factory = previous


def _pin(factory: MockFactory, bcm: int) -> MockPWMPin:
    return factory.pin(bcm)


def _led_lines(rgb: bool) -> dict[str, int]:
    lines = PINS.in_use(rgb)
    del lines["button"]
    return lines


def _expected_for(state: BoxState, rgb: bool) -> dict[str, LedPattern]:
    """The pattern each LED line must replay, by role."""
    pattern = leds_for(state)
    if not rgb:
        return {"status": pattern.status, "pairing": pattern.pairing, "alert": pattern.alert}
    colour = dict(zip(("red", "green", "blue"), pattern.rgb.colour, strict=True))
    light = pattern.rgb.light
    out: dict[str, LedPattern] = {}
    for role, level in colour.items():
        if level == 0.0 or light == Off():
            out[role] = Off()
        elif isinstance(light, Steady):
            out[role] = Steady(light.brightness * level)
        else:
            out[role] = light  # blink/pulse scale the level; timing is what we check
    return out


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    until_sync(condition, timeout, "the panel")


@pytest.mark.parametrize("rgb", [False, True], ids=["three-leds", "rgb"])
@pytest.mark.parametrize("state", list(BoxState), ids=lambda s: s.name)
def test_steady_and_dark_leds_for_every_state(
    factory: MockFactory, state: BoxState, rgb: bool
) -> None:
    with FrontPanel(PINS, rgb=rgb) as panel:
        panel.show(state)
        assert panel.state is state
        for role, pattern in _expected_for(state, rgb).items():
            value = _pin(factory, _led_lines(rgb)[role]).state
            if isinstance(pattern, Off):
                assert value == 0.0, role
            elif isinstance(pattern, Steady):
                assert isclose(value, pattern.brightness), role


BLINKS = [
    (state, rgb, role, pattern)
    for rgb in (False, True)
    for state in BoxState
    for role, pattern in _expected_for(state, rgb).items()
    if isinstance(pattern, Blink)
]


def _observe_blink(state: BoxState, rgb: bool, role: str) -> list[tuple[str, float]]:
    """Show `state` on a panel with its own mock factory; return one full on and one
    full off interval of the `role` line as (on|off, seconds)."""
    factory = MockFactory(pin_class=MockPWMPin)
    pin = factory.pin(_led_lines(rgb)[role])
    with FrontPanel(PINS, rgb=rgb, pin_factory=factory) as panel:
        panel.show(BoxState.READY)  # steady: no fade thread left to race with
        pin.clear_states()
        panel.show(state)
        # states[i].timestamp is how long states[i-1] lasted. states[1] is the first
        # edge after the blink started, so states[2] and states[3] measure one full
        # interval each, one on and one off.
        _wait_for(lambda: len(pin.states) >= 4, timeout=10.0)
        history = list(pin.states)
    return [
        ("on" if previous.state > 0 else "off", current.timestamp)
        for previous, current in itertools.pairwise(history[1:4])
    ]


def test_blinking_leds_toggle_with_the_pattern_times() -> None:
    # Every blinking line of every state on both wirings, observed concurrently
    # (one mock factory each) so that the slow patterns cost their period once.
    results: dict[int, list[tuple[str, float]]] = {}

    def observe(index: int) -> None:
        state, rgb, role, _ = BLINKS[index]
        results[index] = _observe_blink(state, rgb, role)

    threads = [threading.Thread(target=observe, args=(i,)) for i in range(len(BLINKS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15.0)
    assert len(results) == len(BLINKS)
    for index, (state, rgb, role, pattern) in enumerate(BLINKS):
        seen = dict(results[index])
        label = f"{state.name} {'rgb' if rgb else '3-led'} {role}: {results[index]}"
        assert set(seen) == {"on", "off"}, label
        # A timer never fires early but may fire late on a busy machine: tight
        # below, generous above.
        for phase, expected in (("on", pattern.on_time), ("off", pattern.off_time)):
            assert expected * 0.9 - 0.02 <= seen[phase] <= expected * 1.5 + 0.3, label


@pytest.mark.parametrize("rgb", [False, True], ids=["three-leds", "rgb"])
def test_booting_fades_the_status_light(factory: MockFactory, rgb: bool) -> None:
    pulse = leds_for(BoxState.BOOTING).status
    assert isinstance(pulse, Pulse)
    pin = _pin(factory, PINS.red if rgb else PINS.status)
    with FrontPanel(PINS, rgb=rgb) as panel:
        assert panel.state is BoxState.BOOTING
        pin.clear_states()
        _wait_for(lambda: sum(0.0 < s.state < 1.0 for s in pin.states) >= 5)
        levels = [s.state for s in pin.states[1:]]
    rising = [b > a for a, b in itertools.pairwise(levels)]
    assert any(rising), levels  # it fades in, through levels no blink or steady LED has
    assert all(0.0 <= v <= 1.0 for v in levels)


def test_showing_the_same_state_again_does_not_restart_the_blink(factory: MockFactory) -> None:
    pin = _pin(factory, PINS.pairing)
    with FrontPanel(PINS, rgb=False) as panel:
        panel.show(BoxState.PAIRING_OPEN)
        _wait_for(lambda: pin.state == 1.0)
        _wait_for(lambda: pin.state == 0.0)  # now in the 0.5 s off phase
        seen = len(pin.states)
        for _ in range(5):
            panel.show(BoxState.PAIRING_OPEN)  # the box refreshes often
        _wait_for(lambda: pin.state == 1.0)  # the next on phase, whenever it comes
        after = pin.states[seen:]
    # A restarted blink would have switched the LED on again at once; the running
    # one waits out its off phase (each state's timestamp is the time since the last).
    assert after[0].state == 1.0
    assert after[0].timestamp >= 0.5 * 0.9 - 0.02, after


def test_close_turns_leds_off_and_releases_lines(factory: MockFactory) -> None:
    panel = FrontPanel(PINS, rgb=False)
    panel.show(BoxState.READY)
    assert _pin(factory, PINS.status).state == 1.0
    panel.close()
    panel.close()
    assert _pin(factory, PINS.status).state == 0.0
    with pytest.raises(RuntimeError):
        panel.show(BoxState.READY)
    again = FrontPanel(PINS, rgb=False)  # the lines are free again
    again.close()


class Recorder:
    def __init__(self) -> None:
        self.pair_presses = 0
        self.long_holds = 0
        self.held = threading.Event()

    def pair(self) -> None:
        self.pair_presses += 1

    def hold(self) -> None:
        self.long_holds += 1
        self.held.set()


def test_short_press_calls_on_pair_press(factory: MockFactory) -> None:
    clock, calls = Clock(1000.0), Recorder()
    button = _pin(factory, PINS.button)
    with FrontPanel(
        PINS, rgb=False, clock=clock, on_pair_press=calls.pair, on_long_hold=calls.hold
    ):
        assert button.state == 1  # pull-up: released reads high
        button.drive_low()
        clock.now += 0.2
        button.drive_high()
    assert (calls.pair_presses, calls.long_holds) == (1, 0)


def test_contact_bounce_is_not_a_press(factory: MockFactory) -> None:
    clock, calls = Clock(1000.0), Recorder()
    button = _pin(factory, PINS.button)
    with FrontPanel(PINS, rgb=False, clock=clock, on_pair_press=calls.pair):
        button.drive_low()
        clock.now += 0.01
        button.drive_high()
    assert calls.pair_presses == 0


def test_long_hold_calls_only_on_long_hold_and_changes_nothing(factory: MockFactory) -> None:
    calls = Recorder()
    button = _pin(factory, PINS.button)
    lines = _led_lines(False)
    with FrontPanel(
        PINS, rgb=False, hold_seconds=0.2, on_pair_press=calls.pair, on_long_hold=calls.hold
    ) as panel:
        panel.show(BoxState.READY)
        before = {role: _pin(factory, bcm).state for role, bcm in lines.items()}
        button.drive_low()
        assert calls.held.wait(timeout=3.0)
        calls.held.clear()
        # Keep holding for longer than the hold time again: the gesture must not repeat.
        assert not calls.held.wait(timeout=0.3)
        button.drive_high()
        assert panel.state is BoxState.READY
        after = {role: _pin(factory, bcm).state for role, bcm in lines.items()}
    assert (calls.pair_presses, calls.long_holds) == (0, 1)
    assert after == before


def test_production_hold_time_is_ten_seconds(factory: MockFactory) -> None:
    with FrontPanel(PINS, rgb=False) as panel:
        assert panel._button.hold_time == 10.0


def test_a_failing_callback_does_not_break_the_button(factory: MockFactory) -> None:
    clock = Clock(1000.0)
    button = _pin(factory, PINS.button)
    presses = []

    def broken() -> None:
        presses.append(clock.now)
        raise ValueError("bug in the box")

    with FrontPanel(PINS, rgb=False, clock=clock, on_pair_press=broken):
        for _ in range(2):
            button.drive_low()
            clock.now += 0.2
            button.drive_high()
    assert len(presses) == 2
