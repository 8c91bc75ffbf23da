"""Every page and form of the web UI checks the user's role, but for a known few.

A new route added without `@require_role` would be open to anyone on the LAN; this
walks the real router so that the next one is caught (review P1, session 10).
"""

from __future__ import annotations

from pathlib import Path

from web_helpers import new_box, web_app

# Reachable without a role, each guarded otherwise: the wizard and unlock pages by the
# box's phase (a set-up, unlocked box sends them away), the recovery sheet by the
# wizard's session (kit_views._sheet: 404 outside it), login/logout/language by nature,
# "/" by a redirect to /login or to the role's home, /static by being static.
OPEN = {
    "/",
    "/login",
    "/logout",
    "/lang",
    "/static",
    "/unlock",
    "/setup",
    "/setup/language",
    "/setup/identity",
    "/setup/create",
    "/setup/words",
    "/setup/confirm",
    "/setup/admin",
    "/setup/kit",
    "/setup/kit.pdf",
    "/setup/restore",
    "/setup/restore/passphrase",
    "/setup/restored",
    "/setup/restored/unlock",
    "/setup/restored/status",
}


def test_every_route_but_the_open_few_requires_a_role(tmp_path: Path) -> None:
    app = web_app(new_box(tmp_path))
    unguarded = sorted(
        {
            route.resource.canonical
            for route in app.router.routes()
            if route.resource is not None and getattr(route.handler, "allowed_roles", None) is None
        }
    )
    assert [path for path in unguarded if path not in OPEN] == []
    # The walk sees the routes: the office's search and the integrity page's
    # acknowledgement, both added this session, are among the guarded ones.
    guarded = {
        route.resource.canonical: route.handler.allowed_roles  # type: ignore[attr-defined]
        for route in app.router.routes()
        if route.resource is not None and hasattr(route.handler, "allowed_roles")
    }
    assert "/office/search" in guarded and "auditor" not in guarded["/office/search"]
    assert any(path.startswith("/integrity/losses/") for path in guarded)
