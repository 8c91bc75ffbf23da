"""A private D-Bus bus and avahi-daemon, for mDNS tests in network namespaces.

`start_bus` runs a dbus-daemon on a socket in a test directory (a "system" bus
that lets everyone talk); `start_avahi` runs an avahi-daemon in a network
namespace with its own /run/avahi-daemon (a private mount namespace), on that
bus; `browse` runs avahi-browse there. Needs root and the Debian packages
dbus, avahi-daemon and avahi-utils.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from strongroom.appliance.avahi import avahi_running


@dataclass
class Side:
    ns: str
    link: str
    bus: str  # D-Bus address
    procs: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONF = """[server]
host-name={host}
use-ipv4=yes
use-ipv6=no
allow-interfaces={link}
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000
[publish]
publish-addresses=yes
publish-workstation=no
"""


def sh(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def start_bus(directory: Path, name: str) -> tuple[str, subprocess.Popen[bytes]]:
    socket = directory / f"{name}.bus"
    conf = directory / f"{name}-bus.conf"
    conf.write_text(BUS_CONF.format(socket=socket))
    proc = subprocess.Popen(
        ["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert proc.poll() is None, "dbus-daemon exited"
        assert time.monotonic() < deadline, "dbus-daemon did not listen"
        time.sleep(0.05)
    return f"unix:path={socket}", proc


def start_avahi(directory: Path, side: Side, host: str) -> None:
    conf = directory / f"{host}-avahi.conf"
    conf.write_text(AVAHI_CONF.format(host=host, link=side.link))
    # Its own /run/avahi-daemon (pid file, socket): a private mount namespace.
    script = (
        "mkdir -p /run/avahi-daemon && mount -t tmpfs tmpfs /run/avahi-daemon && "
        f"exec avahi-daemon -f {conf} --no-drop-root --no-chroot --no-rlimits"
    )
    argv = ["ip", "netns", "exec", side.ns, "unshare", "-m", "--propagation", "private"]
    proc = subprocess.Popen(
        [*argv, "sh", "-c", script],
        env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": side.bus},
        stdout=subprocess.DEVNULL,
        stderr=(directory / f"{host}-avahi.log").open("wb"),
    )
    side.procs.append(proc)
    deadline = time.monotonic() + 15
    while not asyncio.run(avahi_running(side.bus)):
        assert proc.poll() is None, (directory / f"{host}-avahi.log").read_text()
        assert time.monotonic() < deadline, "avahi-daemon did not take its D-Bus name"
        time.sleep(0.1)


def unescape(field: str) -> str:
    """avahi-browse -p writes `Cabinet\\032Martin` (decimal escapes)."""
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), field)


def browse(side: Side, service_type: str, want: str, timeout: float = 20) -> list[str]:
    """`avahi-browse -rptk` lines (resolved, `=`, unescaped) in `side`'s namespace with `want`."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ip", "netns", "exec", side.ns, "avahi-browse", "-rptk", service_type],
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": side.bus},
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        lines = [unescape(line) for line in out.splitlines() if line.startswith("=")]
        lines = [line for line in lines if want in line]
        if lines:
            return lines
        time.sleep(0.5)
    return lines
