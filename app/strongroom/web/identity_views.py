"""The Identity page: the box's two fingerprints, each labelled for its use, and
its signing public key (box.pem) for anyone who checks a sealed export."""

from __future__ import annotations

from aiohttp import web

from strongroom.office.identity_facts import OPENSSL_FINGERPRINT_CMD, IdentityFacts
from strongroom.web.auth import ADMIN, ARCHIVIST, AUDITOR, require_role
from strongroom.web.render import render
from strongroom.web.state import state_of

routes = web.RouteTableDef()


def _facts(request: web.Request) -> IdentityFacts:
    keys = state_of(request).box.keys
    if keys is None:  # logged-in pages need an unlocked box; be safe anyway
        raise web.HTTPServiceUnavailable(text="the box is locked")
    return IdentityFacts.of(keys)


@routes.get("/identity")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def identity_page(request: web.Request) -> web.StreamResponse:
    context = {"facts": _facts(request), "openssl_command": OPENSSL_FINGERPRINT_CMD}
    return render(request, "identity.html", context)


@routes.get("/identity/box.pem")
@require_role(ADMIN, ARCHIVIST, AUDITOR)
async def box_pem(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=_facts(request).box_pem.encode("ascii"),
        headers={
            "Content-Type": "application/x-pem-file",
            "Content-Disposition": 'attachment; filename="box.pem"',
            "Cache-Control": "no-store",
        },
    )
