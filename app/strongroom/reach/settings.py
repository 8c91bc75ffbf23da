"""The box's remote-reach settings: `reach.json` in the data directory.

Off by default: no file means off. The file also names the two Unix sockets
(the appliance's defaults below; tests and unusual installs override them):
where the box listens for tor, and where the privileged helper listens for the box.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from strongroom.identity.atomic_file import write_atomically

SETTINGS_NAME = "reach.json"
# Debian's convention for onion-service sockets (directory mode 02750, group debian-tor).
DEFAULT_ONION_SOCKET = Path("/var/lib/tor-onion-sockets/default/strongroom/peer.sock")
DEFAULT_HELPER_SOCKET = Path("/run/strongroom-reach/helper.sock")


class ReachSettingsError(ValueError):
    """reach.json is unreadable or holds a value we refuse."""


@dataclass(frozen=True)
class ReachSettings:
    enabled: bool = False
    onion_socket: Path = DEFAULT_ONION_SOCKET
    helper_socket: Path = DEFAULT_HELPER_SOCKET

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}

    def with_enabled(self, enabled: bool) -> ReachSettings:
        return replace(self, enabled=enabled)


def settings_path(data_dir: Path) -> Path:
    return data_dir / SETTINGS_NAME


def load_settings(data_dir: Path) -> ReachSettings:
    path = settings_path(data_dir)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ReachSettings()
    except (OSError, json.JSONDecodeError) as exc:
        raise ReachSettingsError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict) or not raw.keys() <= {"enabled", "onion_socket", "helper_socket"}:
        raise ReachSettingsError(f"{path}: unknown settings")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ReachSettingsError(f"{path}: enabled must be true or false")
    paths: dict[str, Path] = {}
    for key in ("onion_socket", "helper_socket"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key].startswith("/"):
                raise ReachSettingsError(f"{path}: {key} must be an absolute path")
            paths[key] = Path(raw[key])
    return ReachSettings(enabled, **paths)


def save_settings(data_dir: Path, settings: ReachSettings) -> None:
    text = json.dumps(settings.to_json(), indent=2) + "\n"
    write_atomically(settings_path(data_dir), text.encode("utf-8"), 0o600)
