"""sd_notify client against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.appliance.sdnotify import Notifier, watchdog_interval, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def test_ready_watchdog_stopping_status_reach_the_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready()
    assert notifier.watchdog()
    assert notifier.status("archive open\n3 devices")
    assert notifier.stopping()
    received = [sock.recv(4096) for _ in range(4)]
    assert received == [b"READY=1", b"WATCHDOG=1", b"STATUS=archive open 3 devices", b"STOPPING=1"]


def test_abstract_namespace_socket() -> None:
    name = f"strongroom-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_systemd_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False


def test_watchdog_interval_from_environment() -> None:
    me = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "2500000"}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


async def test_watchdog_loop_pings_and_stops_when_the_loop_hangs(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    arrivals: list[float] = []

    def receive() -> None:
        # A thread, not the event loop, listens: it must see what a hung loop does.
        with contextlib.suppress(OSError):
            while True:
                if sock.recv(4096) == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    task = asyncio.create_task(watchdog_loop(Notifier({"NOTIFY_SOCKET": path}), 0.1))
    await asyncio.sleep(0.3)
    assert len(arrivals) >= 2  # pings every 0.05 s while the loop is healthy
    hung_at = time.monotonic()
    time.sleep(0.5)  # noqa: ASYNC251 - the event loop hangs, on purpose
    resumed_at = time.monotonic()
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    during_hang = [t for t in arrivals if hung_at + 0.05 < t < resumed_at]
    assert during_hang == []
    assert any(t > resumed_at for t in arrivals)  # and resume with the loop


async def test_watchdog_loop_rejects_a_nonsense_interval() -> None:
    with pytest.raises(ValueError):
        await watchdog_loop(Notifier({}), 0)
