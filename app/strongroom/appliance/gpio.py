"""The front panel's pins on the appliance, and the fault shown when the service is dead.

On the box the panel uses lgpio and nothing else. Left to itself gpiozero tries
lgpio, then silently falls back to other libraries (logging a warning only):
under systemd that hid a dead panel (lgpio could not write its notification
FIFO into the working directory `/`). Now lgpio's failure is the panel's
failure, and the runtime turns it into a fault on the dashboard and in
`systemctl status`. lgpio writes its FIFOs into $LG_WD: the unit sets it to its
RuntimeDirectory (/run/strongroom).

`strongroom panel-fault` is what `strongroom-fault.service` runs when the box
service has failed for good (OnFailure=, after the restart limit): it claims the
lines and shows ERROR (status dark, alert lit) until systemd stops it, which
happens as soon as `strongroom.service` starts again (Conflicts=).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from strongroom.config import BoxConfig
from strongroom_panel.panel import FrontPanel
from strongroom_panel.pins import load_panel_config
from strongroom_panel.state import BoxState

log = logging.getLogger(__name__)


def pin_factory_for(config: BoxConfig) -> Any:
    """gpiozero's pin factory for this box: mock pins on a dev box, lgpio on the Pi."""
    if config.mock_gpio:
        return MockFactory(pin_class=MockPWMPin)
    # python3-lgpio exists only on the Pi (Debian package, not a wheel), so it
    # is imported here, where a missing library becomes the panel's fault.
    from gpiozero.pins.lgpio import LGPIOFactory

    return LGPIOFactory()


def open_panel(pin_factory: Any, on_pair_press: Callable[[], None]) -> FrontPanel:
    """The front panel as /etc/strongroom/panel.toml wires it; raises if the lines are taken."""
    panel_config = load_panel_config()
    return FrontPanel(
        panel_config.pins,
        panel_config.rgb,
        hold_seconds=panel_config.hold_seconds,
        on_pair_press=on_pair_press,
        on_long_hold=lambda: log.info("PAIR held: nothing destructive happens"),
        pin_factory=pin_factory,
    )


async def hold_fault(config: BoxConfig, stop: asyncio.Event, pin_factory: Any = None) -> None:
    """Show ERROR on the panel until `stop` is set, then release the lines."""
    panel_config = load_panel_config()
    factory = pin_factory if pin_factory is not None else pin_factory_for(config)
    with FrontPanel(panel_config.pins, panel_config.rgb, pin_factory=factory) as panel:
        panel.show(BoxState.ERROR)
        log.error("strongroom.service is down: the front panel shows the fault")
        await stop.wait()
