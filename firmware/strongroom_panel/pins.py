"""Where the panel is wired: one config file, `firmware/panel.toml`.

The defaults below are the documented wiring (docs/hardware.md) and equal the
values shipped in firmware/panel.toml; a missing file or missing key falls back
to them so a box with the reference wiring needs no config at all.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# On the box, scripts/install.sh puts the file here.
INSTALLED_CONFIG_PATH = Path("/etc/strongroom/panel.toml")

# Production hold time for the long-hold gesture (seconds).
DEFAULT_HOLD_SECONDS = 10.0

# GPIO 0/1 carry the HAT ID EEPROM bus; 28+ are not on the 40-pin header.
_USABLE_BCM = range(2, 28)


class PanelConfigError(ValueError):
    """The panel config file is unreadable or names impossible pins."""


@dataclass(frozen=True)
class PanelPins:
    """BCM numbers of every panel line (RGB lines are used only with the RGB option)."""

    button: int = 17
    status: int = 23
    pairing: int = 24
    alert: int = 25
    red: int = 5
    green: int = 6
    blue: int = 13

    def in_use(self, rgb: bool) -> dict[str, int]:
        """The lines the chosen LED option actually drives, by role."""
        leds = (
            {"red": self.red, "green": self.green, "blue": self.blue}
            if rgb
            else {"status": self.status, "pairing": self.pairing, "alert": self.alert}
        )
        return {"button": self.button, **leds}


@dataclass(frozen=True)
class PanelConfig:
    """Everything `firmware/panel.toml` says."""

    pins: PanelPins = PanelPins()
    rgb: bool = False
    hold_seconds: float = DEFAULT_HOLD_SECONDS


def _pin(table: dict[str, Any], role: str, default: int) -> int:
    value = table.get(role, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PanelConfigError(f"pins.{role} must be a BCM number, got {value!r}")
    if value not in _USABLE_BCM:
        raise PanelConfigError(f"pins.{role} = {value} is not a usable BCM GPIO (2..27)")
    return value


def parse_panel_config(data: dict[str, Any]) -> PanelConfig:
    """Validate a parsed TOML document; missing keys take the documented defaults."""
    panel = data.get("panel", {})
    pins_table = data.get("pins", {})
    if not isinstance(panel, dict) or not isinstance(pins_table, dict):
        raise PanelConfigError("[panel] and [pins] must be tables")
    d = PanelPins()
    pins = PanelPins(
        **{
            role: _pin(pins_table, role, getattr(d, role))
            for role in d.in_use(True) | d.in_use(False)
        }
    )
    rgb = panel.get("rgb", False)
    if not isinstance(rgb, bool):
        raise PanelConfigError(f"panel.rgb must be true or false, got {rgb!r}")
    hold = panel.get("hold_seconds", DEFAULT_HOLD_SECONDS)
    if isinstance(hold, bool) or not isinstance(hold, int | float) or hold <= 0:
        raise PanelConfigError(f"panel.hold_seconds must be a positive number, got {hold!r}")
    used = pins.in_use(rgb)
    if len(set(used.values())) != len(used):
        raise PanelConfigError(f"two panel lines share one GPIO: {used}")
    return PanelConfig(pins=pins, rgb=rgb, hold_seconds=float(hold))


def load_panel_config(path: Path = INSTALLED_CONFIG_PATH) -> PanelConfig:
    """Read the panel config; an absent file means the reference wiring."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return PanelConfig()
    except OSError as exc:
        raise PanelConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PanelConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_panel_config(data)
