"""Pairing over the control socket: `strongroom pair --qr` on a box without a browser.

POST /pair/qr issues a QR offer exactly as the web UI's "Pair by QR code" does
(a new one-time secret; the previous offer stops working) and answers its
payload, so the CLI can draw the code in the terminal or hand it to a script.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from strongroom.appliance.discovery import unique_host_name
from strongroom.pairing.errors import InvalidQrOffer
from strongroom.unlock import BoxPhase

if TYPE_CHECKING:
    from strongroom.box import Box

WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - compared with, never bound


def offer_host(configured: str, box_name: str, fingerprint: str) -> str:
    """The address a phone should use: the configured one, or the box's unique mDNS
    name (`strongroom-3841.local`, which its certificate carries) when it listens on
    every interface (a wildcard means nothing to a phone)."""
    if configured not in WILDCARDS:
        return configured
    return f"{unique_host_name(box_name, fingerprint)}.local"


def pairing_routes(box: Box, address: Callable[[], tuple[str, int]]) -> web.RouteTableDef:
    """`address()` is the box's (configured host, web port)."""
    routes = web.RouteTableDef()

    @routes.post("/pair/qr")
    async def pair_qr(request: web.Request) -> web.Response:
        fingerprint = box.fingerprint
        if box.phase is not BoxPhase.READY or box.pairing is None or fingerprint is None:
            return web.json_response({"error": "the box is locked: unlock it first"}, status=409)
        body = await request.json() if request.can_read_body else None
        configured, port = address()
        host = body.get("host") if isinstance(body, dict) and body.get("host") else None
        try:
            offer = box.pairing.issue_qr(
                host or offer_host(configured, box.config.box_name, fingerprint), port, fingerprint
            )
        except InvalidQrOffer as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await box.audit("cli", "pairing.qr", "control socket", {"host": offer.host, "port": port})
        status = box.pairing.status()
        return web.json_response(
            {
                "uri": offer.uri,
                "host": offer.host,
                "port": offer.port,
                "fingerprint": offer.fingerprint,
                "expires_in_s": round(status.qr_seconds_left),
            }
        )

    return routes
