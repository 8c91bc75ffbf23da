"""The front panel on the appliance: a panel that cannot claim its pins is a visible
fault (dashboard, STATUS=), and `strongroom panel-fault` lights the alert LED
while the box service is down."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from e2e_helpers import LED_PINS, WebAdmin, prepare_data_dir, until
from strongroom.appliance.gpio import hold_fault
from strongroom.appliance.sdnotify import Notifier
from strongroom.config import BoxConfig
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom_panel.panel import FrontPanel
from strongroom_panel.pins import PanelPins
from web_helpers import ADMIN_PASSWORD

STRONGROOM = str(Path(sys.executable).parent / "strongroom")


def led_level(factory: MockFactory, role: str) -> float:
    return float(factory.pin(LED_PINS[role]).state)


async def test_pins_held_by_another_program_are_a_fault_on_the_dashboard(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    factory = MockFactory(pin_class=MockPWMPin)
    squatter = FrontPanel(PanelPins(), False, pin_factory=factory)  # holds every line
    status_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    status_socket.bind(str(tmp_path / "notify"))
    status_socket.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    runtime = BoxRuntime(config, pin_factory=factory, notifier=notifier)
    await runtime.start()
    admin = WebAdmin(runtime.url)
    try:
        assert runtime.panel is None
        assert "GPIOPinInUse" in runtime.box.faults["panel"]
        # The box itself still works: unlock and log in on the web UI.
        status, _, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 303 and runtime.box.phase is BoxPhase.READY
        await admin.login()
        status, page = await admin.get("/dashboard")
        assert status == 200
        assert 'data-fault="panel"' in page
        assert "The front panel does not work" in page
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(status_socket.recv(4096).decode())
        statuses = [m for m in messages if m.startswith("STATUS=")]
        assert statuses and "panel fault: GPIOPinInUse" in statuses[-1]
    finally:
        await admin.close()
        await runtime.stop()
        squatter.close()
        status_socket.close()


async def test_a_free_panel_is_no_fault(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    runtime = BoxRuntime(config, pin_factory=MockFactory(pin_class=MockPWMPin))
    await runtime.start()
    try:
        assert runtime.panel is not None and runtime.box.faults == {}
    finally:
        await runtime.stop()


async def test_fault_holder_lights_alert_darkens_status_and_releases_on_stop(
    tmp_path: Path,
) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    stop = asyncio.Event()
    holder = asyncio.create_task(hold_fault(BoxConfig(data_dir=tmp_path), stop, factory))
    await until(lambda: led_level(factory, "alert") == 1.0, what="the alert LED")
    assert led_level(factory, "status") == 0.0
    assert led_level(factory, "pairing") == 0.0
    stop.set()
    await asyncio.wait_for(holder, 5)
    # The box can claim the lines again.
    FrontPanel(PanelPins(), False, pin_factory=factory).close()


async def test_panel_fault_command_runs_until_systemd_stops_it(tmp_path: Path) -> None:
    box_toml = tmp_path / "box.toml"
    box_toml.write_text(f'data_dir = "{tmp_path}"\nmock_gpio = true\n', encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        STRONGROOM,
        "panel-fault",
        "--config",
        str(box_toml),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), 30)
    assert b"the front panel shows the fault" in line
    assert process.returncode is None  # holds the LEDs until stopped
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
