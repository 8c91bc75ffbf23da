"""Between the box and its front panel: facts in, one LED state out.

`panel_inputs` is a pure function of what the box knows; the panel package
turns the result into LED patterns. In dev and tests the pins are gpiozero's
MockFactory pins, so the same code runs without a Pi.
"""

from __future__ import annotations

from typing import Any

from strongroom.unlock import BoxPhase
from strongroom_panel.state import PairingResult, PanelInputs


def panel_inputs(
    *,
    now: float,
    phase: BoxPhase,
    booting: bool,
    pairing_status: Any | None,
    disk_percent: float,
    backup_running: bool,
    integrity_ok: bool,
    error: str | None,
) -> PanelInputs:
    window_open = bool(getattr(pairing_status, "open", False))
    seconds_left = float(getattr(pairing_status, "seconds_left", 0.0) or 0.0)
    last = getattr(pairing_status, "last_result", None)
    last_at = getattr(pairing_status, "last_result_at", None)
    result: PairingResult | None = None
    if last is not None:
        text = str(getattr(last, "value", last))
        if text in ("accepted", "paired"):
            result = PairingResult.PAIRED
        elif text == "overlap":
            result = PairingResult.OVERLAP
    return PanelInputs(
        now=now,
        booting=booting,
        locked=phase is not BoxPhase.READY,
        pairing_window_open=window_open,
        pairing_seconds_left=seconds_left,
        last_pairing_result=result,
        last_pairing_at=last_at,
        overlap=bool(getattr(pairing_status, "overlap", False)),
        error=error,
        disk_percent=disk_percent,
        backup_running=backup_running,
        integrity_ok=integrity_ok,
    )
