"""Devices: the paired phones, pairing (button window or QR), rename, revoke.

Pairing itself belongs to `box.pairing` (the PairingService); this module only
shows its status and forwards the admin's decisions. Every action is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from markupsafe import Markup

from strongroom.archive.errors import RecordRejected
from strongroom.archive.listings import list_devices
from strongroom.archive.store import Txn, WriteOpOf
from strongroom.box import Box
from strongroom.pairing.errors import InvalidQrOffer, TicketNotPending
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render
from strongroom.web.state import audit, read, state_of, submit

if TYPE_CHECKING:
    from strongroom.pairing.service import PairingService

routes = web.RouteTableDef()
MAX_DEVICE_NAME = 64


def pairing_view(box: Box) -> dict[str, Any] | None:
    """What the pages show of the pairing window, or None when the box has no pairing service."""
    pairing = box.pairing
    if pairing is None:
        return None
    status = pairing.status()
    pending = status.pending
    last = status.last_result
    return {
        "open": bool(status.open),
        "seconds_left": max(0, round(status.seconds_left)),
        "overlap": bool(status.overlap),
        "qr_open": status.qr_open,
        "qr_seconds_left": max(0, round(status.qr_seconds_left)),
        "pending": None
        if pending is None
        else {
            "ticket": pending.ticket_id,
            "device_name": pending.attempt.device_name,
            "owner": pending.attempt.owner,
            "code": pending.attempt.comparison_code,
        },
        "last": None
        if last is None
        else {
            "accepted": bool(last.accepted),
            "refusal": None if last.refusal is None else str(last.refusal),
            "device_name": last.device_name,
        },
    }


def online_device_ids(box: Box) -> set[int] | None:
    """Ids of the devices connected now, or None when the peer service is not running."""
    if box.peers is None:
        return None
    return box.peers.online_devices()


def rename_device_op(device_id: int, name: str) -> WriteOpOf[str]:
    def op(txn: Txn) -> str:
        row = txn.conn.execute("SELECT name FROM devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            raise RecordRejected(f"no device {device_id}")
        txn.conn.execute("UPDATE devices SET name = ? WHERE id = ?", (name, device_id))
        return str(row[0])

    return op


def _device_id(request: web.Request) -> int:
    try:
        return int(request.match_info["device_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


def _require_pairing(box: Box) -> PairingService:
    pairing = box.pairing
    if pairing is None:
        raise web.HTTPServiceUnavailable(text="pairing is not available on this box")
    return pairing


@routes.get("/devices")
@require_role(ADMIN)
async def devices_page(request: web.Request) -> web.StreamResponse:
    box = state_of(request).box
    devices = await read(request, list_devices)
    online = online_device_ids(box)
    await practice_zone(request)  # the page shows times in it
    return render(
        request,
        "devices.html",
        {"devices": devices, "online": online, "pairing": pairing_view(box)},
    )


@routes.get("/devices/pairing.json")
@require_role(ADMIN)
async def pairing_json(request: web.Request) -> web.StreamResponse:
    view = pairing_view(state_of(request).box)
    return web.json_response(view or {"available": False}, headers={"Cache-Control": "no-store"})


@routes.post("/devices/pair")
@require_role(ADMIN)
async def pair_press(request: web.Request) -> web.StreamResponse:
    pairing = _require_pairing(state_of(request).box)
    effect = pairing.press()
    await audit(request, "pairing.press", "web", {"effect": str(effect)})
    raise web.HTTPSeeOther("/devices#pairing")


@routes.post("/devices/pair/confirm")
@require_role(ADMIN)
async def pair_confirm(request: web.Request) -> web.StreamResponse:
    await _decide(request, accept=True)
    raise web.HTTPSeeOther("/devices#pairing")


@routes.post("/devices/pair/reject")
@require_role(ADMIN)
async def pair_reject(request: web.Request) -> web.StreamResponse:
    await _decide(request, accept=False)
    raise web.HTTPSeeOther("/devices#pairing")


async def _decide(request: web.Request, *, accept: bool) -> None:
    pairing = _require_pairing(state_of(request).box)
    form = await request.post()
    ticket = form.get("ticket")
    if not isinstance(ticket, str) or not ticket:
        raise web.HTTPBadRequest(text="no ticket")
    status = pairing.status()
    pending = status.pending
    if pending is None or pending.ticket_id != ticket:
        # The page was stale: the attempt it showed is decided or gone.
        session_of(request).flash("error", "This pairing request is no longer pending.")
        return
    try:
        if accept:
            pairing.confirm(ticket)
        else:
            pairing.reject(ticket)
    except TicketNotPending:
        session_of(request).flash("error", "This pairing request is no longer pending.")
        return
    await audit(
        request,
        "pairing.confirm" if accept else "pairing.reject",
        pending.attempt.device_name,
        {"owner": pending.attempt.owner, "code": pending.attempt.comparison_code},
    )
    session_of(request).flash("success", "Pairing confirmed." if accept else "Pairing rejected.")


@routes.get("/devices/qr")
@require_role(ADMIN)
async def pair_qr_page(request: web.Request) -> web.StreamResponse:
    return render(
        request, "devices_qr.html", {"svg": None, "pairing": pairing_view(state_of(request).box)}
    )


@routes.post("/devices/qr")
@require_role(ADMIN)
async def pair_qr(request: web.Request) -> web.StreamResponse:
    box = state_of(request).box
    pairing = _require_pairing(box)
    host = (request.host or box.config.host).rsplit(":", 1)[0].strip("[]")
    port = request.url.port or box.config.port
    try:
        offer = pairing.issue_qr(host, port, box.fingerprint or "")
    except InvalidQrOffer:
        # Reached through a name the phone cannot use: fall back to the configured address.
        offer = pairing.issue_qr(box.config.host, box.config.port, box.fingerprint or "")
    await audit(request, "pairing.qr", "web", {"host": host, "port": port})
    # The SVG is made by segno from our own offer (no user input in it): safe inline.
    svg = Markup(offer.svg())  # noqa: S704
    return render(request, "devices_qr.html", {"svg": svg, "pairing": pairing_view(box)})


@routes.post("/devices/{device_id}/rename")
@require_role(ADMIN)
async def rename_device(request: web.Request) -> web.StreamResponse:
    device_id = _device_id(request)
    form = await request.post()
    raw = form.get("name")
    name = " ".join(raw.split()) if isinstance(raw, str) else ""
    if not 1 <= len(name) <= MAX_DEVICE_NAME:
        session_of(request).flash("error", "A device name has 1 to 64 characters.")
        raise web.HTTPSeeOther("/devices")
    try:
        old = await submit(request, rename_device_op(device_id, name))
    except RecordRejected:
        raise web.HTTPNotFound() from None
    await audit(request, "device.rename", str(device_id), {"from": old, "to": name})
    session_of(request).flash("success", "Device renamed.")
    raise web.HTTPSeeOther("/devices")


@routes.get("/devices/{device_id}/revoke")
@require_role(ADMIN)
async def revoke_confirm_page(request: web.Request) -> web.StreamResponse:
    device_id = _device_id(request)
    devices = await read(request, list_devices)
    device = next((d for d in devices if d.id == device_id), None)
    if device is None:
        raise web.HTTPNotFound()
    await practice_zone(request)  # the page shows times in it
    return render(request, "devices_revoke.html", {"device": device})


@routes.post("/devices/{device_id}/revoke")
@require_role(ADMIN)
async def revoke_device(request: web.Request) -> web.StreamResponse:
    box = state_of(request).box
    device_id = _device_id(request)
    actor = session_of(request).username or ""
    try:
        # Logged and signed, then the peer service closes the device's sessions,
        # then the audit event: one path for the web UI and the CLI.
        await box.revoke_device(device_id, actor, "revoked in the web UI")
    except RecordRejected:
        raise web.HTTPNotFound() from None
    session_of(request).flash("success", "Device revoked.")
    raise web.HTTPSeeOther("/devices")
