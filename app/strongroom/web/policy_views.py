"""Records office forms for retention policies: create, edit, retire, assign, unassign, four-eyes.

Policies and the four-eyes setting are the office manager's (admin); assigning a
policy to a conversation, a person or a matter is also the archivist's job.
Every change is an audit event written by the office functions.
"""

from __future__ import annotations

from aiohttp import web

from strongroom.office import policies, review
from strongroom.office.errors import InvalidPolicy, OfficeError
from strongroom.office.facts import normalise_person
from strongroom.office.pickers import NoMatch
from strongroom.web.auth import ADMIN, ARCHIVIST, require_role, session_of
from strongroom.web.forms import int_or_none, text_field
from strongroom.web.i18n import N_
from strongroom.web.picker_views import no_match_text, subject_from_form
from strongroom.web.state import read, submit

routes = web.RouteTableDef()


def _spec(form: object) -> policies.PolicySpec:
    value = int_or_none(text_field(form, "duration", 6))
    return policies.PolicySpec(
        name=text_field(form, "name", policies.MAX_NAME_CHARS + 1),
        duration=policies.Duration(value or 0, text_field(form, "unit", 10)),
        start_event=text_field(form, "start_event", 20),
        action=text_field(form, "action", 10),
        legal_basis=text_field(form, "legal_basis", 500),
    )


def _back(request: web.Request, kind: str, msgid: str) -> web.HTTPSeeOther:
    session_of(request).flash(kind, msgid)
    return web.HTTPSeeOther("/office")


@routes.post("/office/policies")
@require_role(ADMIN)
async def create_policy(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        await submit(
            request, policies.create_policy(_spec(form), session_of(request).username or "")
        )
    except OfficeError:
        raise _back(
            request, "error", N_("The policy is incomplete or its name is taken.")
        ) from None
    raise _back(request, "success", N_("Policy created."))


@routes.post("/office/policies/{policy_id:[0-9]{1,18}}")
@require_role(ADMIN)
async def change_policy(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    policy_id = int(request.match_info["policy_id"])
    actor = session_of(request).username or ""
    try:
        if text_field(form, "op", 10) == "retire":
            await submit(request, policies.retire_policy(policy_id, actor))
            raise _back(request, "success", N_("Policy retired."))
        await submit(request, policies.update_policy(policy_id, _spec(form), actor))
    except OfficeError:
        raise _back(
            request, "error", N_("The policy is incomplete or its name is taken.")
        ) from None
    raise _back(request, "success", N_("Policy saved."))


@routes.post("/office/assign")
@require_role(ADMIN, ARCHIVIST)
async def assign(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    scope = text_field(form, "scope", 20)
    session = session_of(request)
    if scope == "default" and session.role != ADMIN:
        raise web.HTTPForbidden()
    policy_id = int_or_none(text_field(form, "policy", 20))
    try:
        if scope in ("conversation", "matter"):
            # The picked number, or what was typed (no JavaScript): one match, or why not.
            found = await read(request, lambda conn: subject_from_form(conn, form, scope))
            subject = str(found)
        else:
            subject = {
                "contact": text_field(form, "person", 200),
                "default": policies.DEFAULT_SUBJECT,
            }.get(scope, "")
        if scope == "contact" and not normalise_person(subject):
            raise InvalidPolicy("a person assignment names the person")
        op = policies.assign_policy(scope, subject, policy_id or 0, session.username or "")
        await submit(request, op)
    except NoMatch as e:
        raise _back(request, "error", no_match_text(scope, e)) from None
    except OfficeError:
        raise _back(
            request, "error", N_("Choose what the policy applies to, and a policy.")
        ) from None
    raise _back(request, "success", N_("Policy assigned."))


@routes.post("/office/unassign")
@require_role(ADMIN, ARCHIVIST)
async def unassign(request: web.Request) -> web.StreamResponse:
    """Remove one assignment: what it governed falls back to the next rule (audited).

    Whoever may assign may remove; the default policy, like its choice, is the admin's.
    """
    form = await request.post()
    scope = text_field(form, "scope", 20)
    if scope == "default" and session_of(request).role != ADMIN:
        raise web.HTTPForbidden()
    subject = text_field(form, "subject", 200)
    try:
        op = policies.unassign_policy(scope, subject, session_of(request).username or "")
        removed = await submit(request, op)
    except OfficeError:
        removed = False
    if not removed:
        raise _back(request, "error", N_("This assignment no longer exists."))
    raise _back(request, "success", N_("Assignment removed."))


@routes.post("/office/four-eyes")
@require_role(ADMIN)
async def four_eyes(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    enabled = text_field(form, "enabled", 5) == "1"
    await submit(request, review.set_two_approvals(enabled, session_of(request).username or ""))
    raise _back(request, "success", N_("Setting saved."))
