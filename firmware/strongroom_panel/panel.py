"""The front panel device: LEDs that replay `patterns.leds_for`, and the PAIR button.

Button gestures:
- short press (released before the hold time): `on_pair_press()`; the box opens
  its pairing window. Fired on release, so that a hold is never also a press.
- hold for `hold_seconds` (10 s in production): `on_long_hold()`. This gesture is
  deliberately NON-destructive: the box only logs and shows information (e.g. its
  address). A factory reset is only possible from the web UI with the 24 words,
  so a curious visitor or a stuck button can never wipe a firm's records.

Callbacks run on gpiozero's own threads (pin events, hold timer). A caller living
in asyncio must hop back with `loop.call_soon_threadsafe`. An exception raised by
a callback is logged and swallowed so that it cannot kill gpiozero's threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gpiozero import PWMLED, RGBLED, Button

from strongroom_panel.patterns import (
    BLACK,
    Blink,
    LedPattern,
    Off,
    Pulse,
    RgbPattern,
    Steady,
    leds_for,
)
from strongroom_panel.pins import DEFAULT_HOLD_SECONDS, PanelPins
from strongroom_panel.state import BoxState

log = logging.getLogger(__name__)

# A press shorter than this (by `clock`) is contact bounce, not a person.
DEFAULT_MIN_PRESS_S = 0.05

Callback = Callable[[], None]


def _apply_single(led: Any, pattern: LedPattern) -> None:
    # Every branch replaces whatever the LED did before: gpiozero stops a running
    # blink/pulse thread when the value is set or a new blink starts.
    match pattern:
        case Off():
            led.off()
        case Steady(brightness=brightness):
            led.value = brightness
        case Blink(on_time=on_time, off_time=off_time):
            led.blink(on_time=on_time, off_time=off_time)
        case Pulse(fade_in=fade_in, fade_out=fade_out):
            led.pulse(fade_in_time=fade_in, fade_out_time=fade_out)


def _apply_rgb(led: Any, pattern: RgbPattern) -> None:
    colour = pattern.colour
    match pattern.light:
        case Off():
            led.off()
        case Steady(brightness=brightness):
            led.color = (colour[0] * brightness, colour[1] * brightness, colour[2] * brightness)
        case Blink(on_time=on_time, off_time=off_time):
            led.blink(on_time=on_time, off_time=off_time, on_color=colour, off_color=BLACK)
        case Pulse(fade_in=fade_in, fade_out=fade_out):
            led.pulse(
                fade_in_time=fade_in, fade_out_time=fade_out, on_color=colour, off_color=BLACK
            )


class FrontPanel:
    """The PAIR button and the LEDs (three single-colour LEDs, or one RGB LED if `rgb`).

    `clock` (monotonic seconds) measures press durations; tests may inject one.
    `pin_factory` is handed to every gpiozero device (None: gpiozero's default,
    i.e. `Device.pin_factory`, lgpio on a Pi 5 / bookworm).
    The panel shows `BoxState.BOOTING` as soon as it is constructed.
    """

    def __init__(
        self,
        pins: PanelPins,
        rgb: bool,
        clock: Callable[[], float] = time.monotonic,
        *,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        min_press_s: float = DEFAULT_MIN_PRESS_S,
        on_pair_press: Callback | None = None,
        on_long_hold: Callback | None = None,
        pin_factory: Any = None,
    ) -> None:
        self.on_pair_press = on_pair_press
        self.on_long_hold = on_long_hold
        self._clock = clock
        self._min_press_s = min_press_s
        self._lock = threading.Lock()
        self._pressed_at: float | None = None
        self._hold_fired = False
        self._state: BoxState | None = None
        self._closed = False
        self._rgb: Any = None
        self._leds: dict[str, Any] = {}
        try:
            if rgb:
                self._rgb = RGBLED(
                    pins.red, pins.green, pins.blue, pwm=True, pin_factory=pin_factory
                )
            else:
                # PWMLED everywhere: the BOOTING pattern fades. lgpio does
                # software PWM on any line, so any BCM pin will do.
                self._leds = {
                    "status": PWMLED(pins.status, pin_factory=pin_factory),
                    "pairing": PWMLED(pins.pairing, pin_factory=pin_factory),
                    "alert": PWMLED(pins.alert, pin_factory=pin_factory),
                }
            self._button: Any = Button(
                pins.button, pull_up=True, hold_time=hold_seconds, pin_factory=pin_factory
            )
        except Exception:
            self.close()
            raise
        self._button.when_pressed = self._pressed
        self._button.when_held = self._held
        self._button.when_released = self._released
        self.show(BoxState.BOOTING)

    @property
    def state(self) -> BoxState | None:
        """The state currently shown (None once closed)."""
        return self._state

    def show(self, state: BoxState) -> None:
        """Show `state`. Showing the state already shown does nothing, so the box may
        refresh every second without restarting a blink mid-cycle."""
        if self._closed:
            raise RuntimeError("front panel is closed")
        if state is self._state:
            return
        pattern = leds_for(state)
        if self._rgb is not None:
            _apply_rgb(self._rgb, pattern.rgb)
        else:
            _apply_single(self._leds["status"], pattern.status)
            _apply_single(self._leds["pairing"], pattern.pairing)
            _apply_single(self._leds["alert"], pattern.alert)
        self._state = state

    def close(self) -> None:
        """Turn the LEDs off and release every GPIO line. Safe to call twice."""
        self._closed = True
        self._state = None
        devices = [*self._leds.values(), self._rgb, getattr(self, "_button", None)]
        for device in devices:
            if device is not None:
                device.close()
        self._leds = {}
        self._rgb = None

    def __enter__(self) -> FrontPanel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # gpiozero calls these from its threads.

    def _pressed(self) -> None:
        with self._lock:
            self._pressed_at = self._clock()
            self._hold_fired = False

    def _held(self) -> None:
        with self._lock:
            if self._hold_fired:
                return  # gpiozero repeats when_held only with hold_repeat; be sure
            self._hold_fired = True
        log.info("PAIR held: showing information only (factory reset is only in the web UI)")
        self._call(self.on_long_hold)

    def _released(self) -> None:
        with self._lock:
            pressed_at, self._pressed_at = self._pressed_at, None
            was_hold = self._hold_fired
            self._hold_fired = False
        if was_hold or pressed_at is None:
            return
        duration = self._clock() - pressed_at
        if duration < self._min_press_s:
            log.debug("PAIR press of %.3f s ignored as contact bounce", duration)
            return
        self._call(self.on_pair_press)

    @staticmethod
    def _call(callback: Callback | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("front panel callback %r failed", callback)
