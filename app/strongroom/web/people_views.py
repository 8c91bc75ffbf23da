"""Passphrases and keystore slots: change your own, reset someone else's.

Every admin has their own keystore slot (docs/identity.md §4), so any of them
can unlock the box after a power cut. The slot follows the account: sealed
when an admin is created or reset, re-sealed when they change their
passphrase, removed when they are disabled (never the last one). The box keeps
the identity entropy in RAM while unlocked (`BoxKeys.entropy`), which is what
lets one admin seal a slot for another without knowing their passphrase.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from strongroom.identity import LastPassphraseSlot
from strongroom.web import persist
from strongroom.web.auth import ADMIN, require_role, session_of
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.render import render, translator_of
from strongroom.web.setup_views import PASSPHRASE_ERRORS as PASSPHRASE_MESSAGES
from strongroom.web.state import WebState, audit, read, state_of, submit
from strongroom.web.users import UnknownUser, get_user, passphrase_problem, set_password_op

routes = web.RouteTableDef()

WRONG_CURRENT = N_("Your current passphrase is wrong.")


def seal_slot(state: WebState, username: str, passphrase: str) -> None:
    """(Re)seal `username`'s keystore slot under `passphrase` (Argon2id: a worker thread)."""
    keys = state.box.keys
    if keys is None or not keys.entropy:
        raise RuntimeError("the box must be unlocked to seal a keystore slot")
    state.box.keystore(**state.keystore_limits).set_passphrase(keys.entropy, username, passphrase)


def remove_slot(state: WebState, username: str) -> bool:
    """Remove an admin's slot; raises LastPassphraseSlot rather than lock everyone out."""
    return state.box.keystore().remove_passphrase(username)


def slot_owners(state: WebState) -> list[str]:
    return state.box.keystore().owners


async def claim_legacy_slot(state: WebState, username: str, passphrase: str) -> None:
    """On an admin's login: name the owner-less slot (version 1 keystore, restore) theirs."""
    keystore = state.box.keystore()
    owners = await asyncio.to_thread(lambda: keystore.owners)
    if "" in owners and username not in owners:
        await asyncio.to_thread(keystore.claim, username, passphrase)


def _new_passphrase_problem(new: str, again: str) -> str | None:
    if new != again:
        return PASSPHRASE_MESSAGES["mismatch"]
    problem = passphrase_problem(new)
    return None if problem is None else PASSPHRASE_MESSAGES[problem.value]


# -- my account: change my passphrase ------------------------------------------------


@routes.get("/account")
@require_role("admin", "archivist", "auditor")
async def account_page(request: web.Request) -> web.StreamResponse:
    return await _account(request)


async def _account(
    request: web.Request, error: str | None = None, status: int = 200
) -> web.Response:
    state, session = state_of(request), session_of(request)
    can_unlock = session.username in await asyncio.to_thread(slot_owners, state)
    context = {"error": error, "can_unlock": can_unlock}
    return render(request, "account.html", context, status=status)


@routes.post("/account/passphrase")
@require_role("admin", "archivist", "auditor")
async def change_passphrase(request: web.Request) -> web.StreamResponse:
    state, session = state_of(request), session_of(request)
    name = session.username or ""
    form = await request.post()
    current, new = text_field(form, "current"), text_field(form, "new")
    translate = translator_of(request)
    user = await read(request, lambda conn: get_user(conn, name))
    if user is None:
        raise web.HTTPNotFound()
    if not await asyncio.to_thread(state.hasher.verify, user.password_hash, current):
        await audit(request, "user.passphrase_refused", name)
        return await _account(request, translate(WRONG_CURRENT), 403)
    problem = _new_passphrase_problem(new, text_field(form, "again"))
    if problem is not None:
        return await _account(request, translate(problem), 400)
    await submit(request, set_password_op(name, await asyncio.to_thread(state.hasher.hash, new)))
    if user.role == ADMIN:
        await asyncio.to_thread(seal_slot, state, name, new)
    await audit(request, "user.passphrase", name, {"unlock_slot": user.role == ADMIN})
    session.flash("success", N_("Your passphrase is changed."))
    raise web.HTTPSeeOther("/account")


# -- an admin resets someone's login ---------------------------------------------------


@routes.post("/users/{username}/reset")
@require_role(ADMIN)
async def reset_login(request: web.Request) -> web.StreamResponse:
    """A new passphrase for another user (they forgot theirs); their sessions end."""
    state, session = state_of(request), session_of(request)
    name = request.match_info["username"]
    form = await request.post()
    new = text_field(form, "password")
    user = await read(request, lambda conn: get_user(conn, name))
    if user is None:
        raise web.HTTPNotFound()
    if name == session.username:
        session.flash("error", N_("Change your own passphrase on your account page."))
        raise web.HTTPSeeOther("/users")
    problem = passphrase_problem(new)
    if problem is not None:
        session.flash("error", PASSPHRASE_MESSAGES[problem.value])
        raise web.HTTPSeeOther("/users")
    try:
        await submit(
            request, set_password_op(name, await asyncio.to_thread(state.hasher.hash, new))
        )
    except UnknownUser:
        raise web.HTTPNotFound() from None
    sealed = user.role == ADMIN and not user.disabled
    if sealed:
        await asyncio.to_thread(seal_slot, state, name, new)
    state.sessions.end_user(name)
    state.login_limiter.forgive(name)
    await persist.save_now(request)  # the ended sessions must not come back after a restart
    await audit(request, "user.reset", name, {"unlock_slot": sealed})
    session.flash("success", N_("The login is reset: give the new passphrase to its owner."))
    raise web.HTTPSeeOther("/users")


async def disable_slot(request: web.Request, name: str) -> bool:
    """Before disabling an admin: drop their slot. False (and a flash) if it is the last."""
    state = state_of(request)
    try:
        removed = await asyncio.to_thread(remove_slot, state, name)
    except LastPassphraseSlot:
        session_of(request).flash(
            "error",
            N_("This is the last administrator who can unlock the box: create another first."),
        )
        return False
    if removed:
        await audit(request, "keystore.slot_remove", name)
    return True
