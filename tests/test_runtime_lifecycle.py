"""BoxRuntime's one lifecycle: a start that fails half-way undoes exactly what it did.

Real failures, injected where a real box meets them: the web port is taken by
another program, the control socket path is blocked. Each time the front
panel's pins must be released (another panel can claim them), the archive
closed (its committer thread stopped) and nothing left listening.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from e2e_helpers import prepare_data_dir
from strongroom.config import BoxConfig
from strongroom.control import socket_path
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom_panel.panel import FrontPanel
from strongroom_panel.pins import PanelPins


async def unattended(tmp_path: Path) -> BoxConfig:
    """A box that opens its archive during start (key file), before the web step."""
    (tmp_path / "usb").mkdir()
    return await prepare_data_dir(tmp_path / "box", keyfile=tmp_path / "usb" / "unlock.key")


def assert_pins_free(factory: MockFactory) -> None:
    # Claims every line the runtime's panel used: raises GPIOPinInUse if one is still held.
    FrontPanel(PanelPins(), False, pin_factory=factory).close()


def assert_nothing_listens(port: int) -> None:
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


async def test_web_port_taken_releases_the_panel_and_closes_the_archive(tmp_path: Path) -> None:
    config = await unattended(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        factory = MockFactory(pin_class=MockPWMPin)
        runtime = BoxRuntime(config.with_overrides(port=port), pin_factory=factory)
        with pytest.raises(OSError) as raised:
            await runtime.start()
        assert raised.value.errno == errno.EADDRINUSE
    # The unattended unlock comes after every part (a migration may take minutes):
    # the archive was never opened, and nothing of it is left open either.
    assert runtime.box.archive is None and runtime.box.committer is None
    assert runtime.panel is not None and runtime.panel.state is None  # closed
    assert_pins_free(factory)
    assert not socket_path(config.data_dir).exists()
    await runtime.stop()  # a stop after a failed start is harmless


async def test_blocked_control_socket_closes_the_web_listener_too(tmp_path: Path) -> None:
    config = await unattended(tmp_path)
    blocker = socket_path(config.data_dir)
    blocker.mkdir()
    (blocker / "something").write_text("not a socket")
    factory = MockFactory(pin_class=MockPWMPin)
    runtime = BoxRuntime(config, pin_factory=factory)
    with pytest.raises(OSError):
        await runtime.start()
    assert runtime.port != 0  # the web step had listened...
    assert_nothing_listens(runtime.port)  # ...and is closed again
    assert runtime.box.archive is None and runtime.box.committer is None
    assert_pins_free(factory)
    assert (blocker / "something").read_text() == "not a socket"


async def test_stop_undoes_start_so_the_same_box_starts_again(tmp_path: Path) -> None:
    config = await unattended(tmp_path)
    factory = MockFactory(pin_class=MockPWMPin)
    first = BoxRuntime(config, pin_factory=factory)
    await first.start()
    assert first.box.phase is BoxPhase.READY
    port = first.port
    await first.stop()
    assert_nothing_listens(port)
    assert not socket_path(config.data_dir).exists()
    assert_pins_free(factory)
    second = BoxRuntime(config, pin_factory=factory)
    await second.start()
    try:
        assert second.box.phase is BoxPhase.READY
    finally:
        await second.stop()
