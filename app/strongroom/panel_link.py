"""Between the box and its front panel: facts in, one LED state out.

`panel_inputs` is a pure function of what the box knows; the panel package
turns the result into LED patterns. In dev and tests the pins are gpiozero's
MockFactory pins, so the same code runs without a Pi.
"""

from __future__ import annotations

from typing import Any

from strongroom.pairing.events import PairingEvent, PairingStatus
from strongroom.pairing.gate import Refusal
from strongroom.unlock import BoxPhase
from strongroom_panel.state import PairingResult, PanelInputs


def panel_inputs(
    *,
    now: float,
    phase: BoxPhase,
    booting: bool,
    pairing: PairingStatus | None,
    disk_percent: float,
    backup_running: bool,
    integrity_ok: bool,
    error: str | None,
    job_failed: bool = False,
) -> PanelInputs:
    result: PairingResult | None = None
    last_at: float | None = None
    # A fresh press must blink at once, so a recent result only shows while no
    # window is open (the panel ranks a recent result above an open window).
    if pairing is not None and pairing.last_result is not None and not pairing.open:
        last = pairing.last_result
        if last.accepted:
            result = PairingResult.PAIRED
        elif last.refusal is Refusal.OVERLAP:
            result = PairingResult.OVERLAP
        last_at = last.at
    return PanelInputs(
        now=now,
        booting=booting,
        updating=phase is BoxPhase.UPDATING,
        locked=phase is not BoxPhase.READY,
        pairing_window_open=bool(pairing and pairing.open),
        pairing_seconds_left=pairing.seconds_left if pairing else 0.0,
        last_pairing_result=result,
        last_pairing_at=last_at,
        overlap=bool(pairing and pairing.overlap),
        error=error,
        disk_percent=disk_percent,
        backup_running=backup_running,
        integrity_ok=integrity_ok,
        job_failed=job_failed,
    )


def audit_fields(event: PairingEvent) -> tuple[str, str, dict[str, Any]]:
    """(action, target, details) of a pairing event for the audit trail."""
    details: dict[str, Any] = {
        "method": event.method.value if event.method else None,
        "refusal": event.refusal.value if event.refusal else None,
        "owner": event.owner,
        "confirmed_by": event.confirmed_by.value if event.confirmed_by else None,
        "key": event.noise_key.hex()[:16] if event.noise_key else None,
    }
    target = event.device_name or ""
    return f"pairing.{event.kind.value}", target, {k: v for k, v in details.items() if v}
