"""State -> LED pattern, as plain data (no I/O).

Two wirings are supported (docs/hardware.md): three single-colour LEDs
(status, pairing, alert) or one RGB LED. `leds_for` gives both for every state so
the table below is the whole visual language of the box; `panel.FrontPanel`
only replays it on whichever LEDs are fitted.

Design rules for the table:
- The status LED is steadily on whenever the box works and nothing is asked of
  the person in front of it; it goes dark only for ERROR and INTEGRITY_FAILURE.
- The pairing LED is only ever lit by pairing states.
- The alert LED is only ever lit by states that need a human (overlap, error,
  a failed night job, disk nearly full, integrity failure); fast blinking means "act now".
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom_panel.state import BoxState


@dataclass(frozen=True)
class Off:
    """LED dark."""


@dataclass(frozen=True)
class Steady:
    """LED lit at a constant brightness (0 < brightness <= 1)."""

    brightness: float = 1.0


@dataclass(frozen=True)
class Blink:
    """LED alternates fully on for `on_time` s and off for `off_time` s, forever."""

    on_time: float
    off_time: float


@dataclass(frozen=True)
class Pulse:
    """LED fades in over `fade_in` s and out over `fade_out` s, forever (needs PWM)."""

    fade_in: float
    fade_out: float


LedPattern = Off | Steady | Blink | Pulse

Colour = tuple[float, float, float]

WHITE: Colour = (1.0, 1.0, 1.0)
GREEN: Colour = (0.0, 1.0, 0.0)
BLUE: Colour = (0.0, 0.0, 1.0)
MAGENTA: Colour = (1.0, 0.0, 1.0)
RED: Colour = (1.0, 0.0, 0.0)
AMBER: Colour = (1.0, 0.5, 0.0)
BLACK: Colour = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RgbPattern:
    """The single-RGB-LED option: one light pattern in one colour."""

    colour: Colour
    light: LedPattern


@dataclass(frozen=True)
class PanelPattern:
    """What every LED does for one state, for both wirings."""

    status: LedPattern
    pairing: LedPattern
    alert: LedPattern
    rgb: RgbPattern


# Timings are chosen to be told apart by eye: 0.1 s = urgent flicker, 0.5 s =
# waiting for you, 0.2/1.8 s = a slow heartbeat, 1 s fades = starting up.
_BOOT = Pulse(fade_in=1.0, fade_out=1.0)
_LOCKED = Blink(on_time=0.2, off_time=1.8)
_WINDOW = Blink(on_time=0.5, off_time=0.5)
_URGENT = Blink(on_time=0.1, off_time=0.1)
_DISK = Blink(on_time=1.0, off_time=1.0)
_BUSY = Blink(on_time=0.9, off_time=0.1)
# Updating the archive: the boot fade, four times faster ("working hard, wait").
_UPDATING = Pulse(fade_in=0.25, fade_out=0.25)
# A short flash every two seconds: "something failed overnight, look at the dashboard".
_FAULT = Blink(on_time=0.2, off_time=1.8)

_TABLE: dict[BoxState, PanelPattern] = {
    BoxState.BOOTING: PanelPattern(_BOOT, Off(), Off(), RgbPattern(WHITE, _BOOT)),
    BoxState.UPDATING: PanelPattern(_UPDATING, Off(), Off(), RgbPattern(WHITE, _UPDATING)),
    BoxState.LOCKED: PanelPattern(_LOCKED, Off(), Off(), RgbPattern(WHITE, _LOCKED)),
    BoxState.READY: PanelPattern(Steady(), Off(), Off(), RgbPattern(GREEN, Steady())),
    BoxState.PAIRING_OPEN: PanelPattern(Steady(), _WINDOW, Off(), RgbPattern(BLUE, _WINDOW)),
    BoxState.PAIRED_OK: PanelPattern(Steady(), Steady(), Off(), RgbPattern(BLUE, Steady())),
    BoxState.OVERLAP: PanelPattern(Steady(), _URGENT, Steady(), RgbPattern(MAGENTA, _URGENT)),
    BoxState.ERROR: PanelPattern(Off(), Off(), Steady(), RgbPattern(RED, Steady())),
    BoxState.DISK_NEARLY_FULL: PanelPattern(Steady(), Off(), _DISK, RgbPattern(AMBER, _DISK)),
    BoxState.BACKUP_RUNNING: PanelPattern(_BUSY, Off(), Off(), RgbPattern(GREEN, _BUSY)),
    BoxState.INTEGRITY_FAILURE: PanelPattern(Off(), Off(), _URGENT, RgbPattern(RED, _URGENT)),
    BoxState.JOB_FAILED: PanelPattern(Steady(), Off(), _FAULT, RgbPattern(RED, _FAULT)),
}


def leds_for(state: BoxState) -> PanelPattern:
    """The LED pattern for `state` (every `BoxState` has one)."""
    return _TABLE[state]
