"""One configuration object for the whole box.

It is read from `box.toml` in the data directory (or a path given on the
command line). Every limit that protects the box from a slow or hostile peer
lives here so that operations can tune it in one place.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from strongroom.appliance.network import parse_networks

CONFIG_FILE_NAME = "box.toml"


class ConfigError(ValueError):
    """The configuration file is unreadable or holds a value we refuse."""


@dataclass(frozen=True)
class Limits:
    """Back-pressure and abuse limits for peer connections."""

    max_frame_bytes: int = 256 * 1024
    max_attachment_bytes: int = 512 * 1024 * 1024
    max_in_flight_frames: int = 64
    idle_timeout_s: float = 120.0
    handshake_timeout_s: float = 10.0
    max_connections: int = 64
    max_connections_per_device: int = 2
    history_page_size: int = 200


@dataclass(frozen=True)
class BoxConfig:
    """Everything the box needs to know before it starts."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    tls: bool = False
    # With TLS, plain http:// on this port redirects to https:// (0: no redirect).
    http_redirect_port: int = 0
    mock_gpio: bool = True
    box_name: str = "strongroom"
    advertise_mdns: bool = False
    mdns_interfaces: tuple[str, ...] = ()
    # Who answers mDNS: "auto" = avahi-daemon when it runs (its D-Bus API),
    # else the box's own zeroconf responder; "avahi" or "zeroconf" to force one.
    mdns_publisher: str = "auto"
    pairing_window_s: float = 120.0
    # How often the running box re-verifies the whole archive (the weekly timer
    # runs `strongroom verify` too; this one feeds the LEDs and the dashboard).
    integrity_interval_s: float = 24 * 3600.0
    unlock_mode: str = "attended"
    unlock_keyfile: Path | None = None
    backup_target: Path | None = None
    # Networks served besides the default LAN (private, link-local, ULA):
    # e.g. ["100.64.0.0/10"] behind a CGNAT, or an office's public /24.
    lan_allow: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    @property
    def keystore_path(self) -> Path:
        return self.data_dir / "keystore.json"

    @property
    def archive_path(self) -> Path:
        return self.data_dir / "archive.db"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def with_overrides(self, **changes: Any) -> BoxConfig:
        return replace(self, **changes)


MDNS_PUBLISHERS = ("auto", "avahi", "zeroconf")

_SCALARS: dict[str, type] = {
    "host": str,
    "port": int,
    "tls": bool,
    "http_redirect_port": int,
    "mock_gpio": bool,
    "box_name": str,
    "advertise_mdns": bool,
    "mdns_publisher": str,
    "pairing_window_s": float,
    "integrity_interval_s": float,
    "unlock_mode": str,
}


def _check_type(name: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{name}: expected {expected.__name__}, got {value!r}")
    return value


def _parse_limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise ConfigError("[limits] must be a table")
    known = {f.name: f.type for f in fields(Limits)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"limits.{key}: unknown setting")
        expected = float if known[key] in ("float", float) else int
        checked = _check_type(f"limits.{key}", value, expected)
        if checked <= 0:
            raise ConfigError(f"limits.{key}: must be positive, got {value!r}")
        values[key] = checked
    return Limits(**values)


def parse_config(text: str, data_dir: Path) -> BoxConfig:
    """Parse a box.toml text; unknown keys and wrong types are errors, not ignored."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"box.toml is not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "limits":
            values["limits"] = _parse_limits(value)
        elif key == "data_dir":
            values["data_dir"] = Path(_check_type(key, value, str))
        elif key in ("unlock_keyfile", "backup_target"):
            values[key] = Path(_check_type(key, value, str))
        elif key == "lan_allow":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("lan_allow: expected a list of networks")
            try:
                parse_networks(value)
            except ValueError as exc:
                raise ConfigError(f"lan_allow: {exc}") from None
            values[key] = tuple(value)
        elif key == "mdns_interfaces":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("mdns_interfaces: expected a list of addresses")
            values[key] = tuple(value)
        elif key in _SCALARS:
            values[key] = _check_type(key, value, _SCALARS[key])
        else:
            raise ConfigError(f"{key}: unknown setting")
    values.setdefault("data_dir", data_dir)
    config = BoxConfig(**values)
    if not 0 < config.port < 65536:
        raise ConfigError(f"port: out of range: {config.port}")
    if config.unlock_mode not in ("attended", "unattended"):
        raise ConfigError("unlock_mode: must be 'attended' or 'unattended'")
    if config.mdns_publisher not in MDNS_PUBLISHERS:
        raise ConfigError("mdns_publisher: must be 'auto', 'avahi' or 'zeroconf'")
    return config


def load_config(data_dir: Path, config_path: Path | None = None) -> BoxConfig:
    path = config_path or data_dir / CONFIG_FILE_NAME
    if not path.exists():
        return BoxConfig(data_dir=data_dir)
    return parse_config(path.read_text(encoding="utf-8"), data_dir)
