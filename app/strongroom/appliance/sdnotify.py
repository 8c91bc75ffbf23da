"""A tiny sd_notify(3) client: tell systemd we are ready, alive, or stopping.

The protocol is one datagram of newline-separated `KEY=VALUE` lines to the
AF_UNIX socket named by $NOTIFY_SOCKET (a leading '@' means the Linux abstract
namespace). Outside systemd, NOTIFY_SOCKET is absent and every call is a no-op,
so the same code runs on a dev box.

The watchdog ping is sent from the asyncio event loop itself (`watchdog_loop`):
if the loop hangs, the pings stop and systemd (WatchdogSec=) restarts the
service, which is the point of having a watchdog at all.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"


class Notifier:
    """Sends notifications to systemd; a no-op when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get(NOTIFY_SOCKET_ENV, "")
        self._address: str | bytes | None
        if not raw:
            self._address = None
        elif raw.startswith("@"):
            # Abstract namespace: the name starts with a NUL byte instead of '@'.
            self._address = b"\0" + raw[1:].encode()
        else:
            self._address = raw

    @property
    def enabled(self) -> bool:
        """True when systemd gave us a socket to notify."""
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send one raw notification; returns False when there is nobody to tell.

        Errors are not raised: a lost notification must never take the box down
        (systemd's own timeouts handle a box that truly stops talking).
        """
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError:
            return False
        return True

    def ready(self) -> bool:
        """Startup finished (Type=notify units are 'active' only after this)."""
        return self.notify("READY=1")

    def watchdog(self) -> bool:
        """Still alive (resets the WatchdogSec= timer)."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """Shutdown has begun."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """One line shown by `systemctl status`."""
        return self.notify("STATUS=" + text.replace("\n", " "))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd expects us to beat, in seconds, or None.

    None when WATCHDOG_USEC is absent or invalid, or when WATCHDOG_PID names
    another process (the variables were inherited, not meant for us).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


async def watchdog_loop(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog every `interval / 2` seconds until cancelled.

    Run it as a task on the service's event loop; half the interval is what
    sd_watchdog_enabled(3) recommends so that one late ping is not fatal.
    """
    if interval <= 0:
        raise ValueError("watchdog interval must be positive")
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval / 2)
