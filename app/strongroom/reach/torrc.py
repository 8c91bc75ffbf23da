"""The onion-service part of tor's configuration, as the reach helper writes it.

A static `HiddenServiceDir` (Debian's tor runs with `Sandbox 1`, which forbids
creating onion services through the control port) and a `HiddenServicePort`
that targets a Unix socket: the box's own service keeps `IPAddressDeny=any`,
which systemd does not apply to Unix sockets. Only port 80 of the onion leads
anywhere, and only to the peer endpoint (the web UI is never on the onion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ONION_PORT = 80
# Streams per rendezvous circuit: a phone needs one WebSocket (two while it
# reconnects). More closes the circuit: a flood costs the attacker a new circuit.
MAX_STREAMS = 4


@dataclass(frozen=True)
class ServiceConfig:
    hs_dir: Path
    onion_socket: Path
    pow_defenses: bool = True
    max_streams: int = MAX_STREAMS


def _quoted(path: Path) -> str:
    text = str(path)
    if any(c in text for c in ' "\\\n#'):
        raise ValueError(f"tor paths here may not hold spaces, quotes or '#': {text!r}")
    return text


def service_conf(config: ServiceConfig | None) -> str:
    """The include file's text; None (reach off) gives an empty service section."""
    header = "# Written by strongroom-reach-helper. Do not edit: it is rewritten.\n"
    if config is None:
        return header + "# Remote reach is off.\n"
    lines = [
        f"HiddenServiceDir {_quoted(config.hs_dir)}",
        "HiddenServiceVersion 3",
        f"HiddenServicePort {ONION_PORT} unix:{_quoted(config.onion_socket)}",
        f"HiddenServiceMaxStreams {int(config.max_streams)}",
        "HiddenServiceMaxStreamsCloseCircuit 1",
    ]
    if config.pow_defenses:
        # Proof-of-work at the introduction points: a client pays only when the
        # service is under load, so a phone on a quiet box sees no cost.
        lines.append("HiddenServicePoWDefensesEnabled 1")
    return header + "\n".join(lines) + "\n"
