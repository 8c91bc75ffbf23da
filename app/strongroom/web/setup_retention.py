"""The first-run wizard's choice of a default retention policy (#13: records office).

Kept apart from setup_views so the wizard's own steps can change without this:
the practice step includes `setup_retention.html` and calls `choices`,
`refusal` (before it changes anything) and `apply_default`. Choosing nothing
("decide later") assigns nothing: no record falls due until a policy applies
to it (docs/records-office.md). The choice is the same assignment as the
records office's "default policy" (scope `default`), audited as
`retention.assign` under the admin's name.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.archive.db import Connection
from strongroom.office import policies
from strongroom.office.errors import OfficeError
from strongroom.web.auth import session_of
from strongroom.web.forms import int_or_none, text_field
from strongroom.web.render import translator_of
from strongroom.web.state import read, submit

FIELD = "default_policy"


def _choices(conn: Connection) -> dict[str, Any]:
    live = [p for p in policies.list_policies(conn) if p.retired_at is None]
    current = [a.policy_id for a in policies.list_assignments(conn) if a.scope == "default"]
    return {
        "retention_policies": [{"id": p.id, "name": p.name, "preset": p.preset} for p in live],
        "retention_default": current[0] if current else None,
    }


async def choices(request: web.Request, posted: Any = None) -> dict[str, Any]:
    """The template's `retention_policies` and `retention_default` (a posted choice kept)."""
    context = await read(request, _choices)
    if posted is not None:
        context["retention_default"] = int_or_none(text_field(posted, FIELD, 20))
    return context


async def refusal(request: web.Request, form: Any) -> str | None:
    """Why the posted choice cannot be assigned (translated), or None: checked before the
    step changes anything, so a refused step is shown again with nothing half done."""
    if not text_field(form, FIELD, 20):
        return None  # decide later
    policy_id = int_or_none(text_field(form, FIELD, 20))

    def live(conn: Connection) -> bool:
        return any(p.id == policy_id and p.retired_at is None for p in policies.list_policies(conn))

    if await read(request, live):
        return None
    return translator_of(request)("Choose one of the listed retention policies.")


async def apply_default(request: web.Request, form: Any) -> str | None:
    """Assign the chosen default policy; return why it was refused (translated), or None."""
    policy_id = int_or_none(text_field(form, FIELD, 20))
    if not text_field(form, FIELD, 20):
        return None  # decide later
    try:
        op = policies.assign_policy(
            "default", policies.DEFAULT_SUBJECT, policy_id or 0, session_of(request).username or ""
        )
        await submit(request, op)
    except OfficeError:
        return translator_of(request)("Choose one of the listed retention policies.")
    return None
