"""Logging in and out, the language switch, and the admins' users page."""

from __future__ import annotations

import asyncio

from aiohttp import web

from strongroom.web import i18n, persist
from strongroom.web.auth import (
    ADMIN,
    ARCHIVIST,
    AUDITOR,
    SESSION_KEY,
    client_address,
    require_role,
    safe_next,
    session_of,
)
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.people_views import claim_legacy_slot, disable_slot, seal_slot, slot_owners
from strongroom.web.practice_zone import practice_zone
from strongroom.web.render import render, translator_of
from strongroom.web.setup_views import PASSPHRASE_ERRORS
from strongroom.web.state import audit, read, state_of, submit
from strongroom.web.throttle import locked_message
from strongroom.web.users import (
    ROLES,
    BadUserInput,
    UnknownUser,
    UserExists,
    check_new_user,
    dummy_hash,
    get_user,
    insert_user_op,
    list_users,
    normalise_username,
    set_disabled_op,
)

routes = web.RouteTableDef()

HOME_BY_ROLE = {ADMIN: "/dashboard", ARCHIVIST: "/archive", AUDITOR: "/audit"}


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if not session.logged_in:
        raise web.HTTPSeeOther("/login")
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(session.role or "", "/login"))


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if session_of(request).logged_in:
        raise web.HTTPSeeOther("/")
    context = {"error": None, "username": "", "next": safe_next(request.query.get("next"))}
    return render(request, "login.html", context)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    form = await request.post()
    typed_name = text_field(form, "username")
    password = text_field(form, "password")
    target = safe_next(text_field(form, "next"))
    username = normalise_username(typed_name) or typed_name.strip().lower()[:64]
    address = client_address(request)
    throttle = state.login_limiter
    translate = translator_of(request)

    def refuse(message: str, status: int) -> web.Response:
        context = {"error": message, "username": typed_name, "next": target}
        return render(request, "login.html", context, status=status)

    # Per account *and* address: a colleague's typos never lock this person out.
    wait = throttle.wait_s(username, address)
    if wait > 0:
        await audit(request, "login.locked_out", username, {"from": address})
        return refuse(locked_message(translate, wait), 429)
    user = await read(request, lambda conn: get_user(conn, username))
    stored = user.password_hash if user is not None else dummy_hash(state.hasher)
    matches = await asyncio.to_thread(state.hasher.verify, stored, password)
    if user is None or not matches or user.disabled:
        lock = throttle.failed(username, address)
        await persist.save_now(request)
        await audit(request, "login.failed", username, {"from": address})
        message = translate(N_("Wrong username or passphrase."))
        if lock > 0:
            message += " " + locked_message(translate, lock)
        return refuse(message, 403)
    throttle.succeeded(username, address)
    if user.role == ADMIN:
        await claim_legacy_slot(state, user.username, password)
    request[SESSION_KEY] = state.sessions.log_in(session_of(request), user.username, user.role)
    await persist.save_now(request)
    await audit(request, "login", user.username, {"from": address})
    if target == "/":
        target = HOME_BY_ROLE[user.role]
    raise web.HTTPSeeOther(target)


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    session = session_of(request)
    if session.logged_in:
        await audit(request, "logout", session.username or "")
    state.sessions.end(session)
    request[SESSION_KEY] = state.sessions.new()
    await persist.save_now(request)
    raise web.HTTPSeeOther("/login")


@routes.post("/lang")
async def switch_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    language = text_field(form, "language")
    if language not in i18n.LANGUAGES:
        language = i18n.DEFAULT_LANGUAGE
    response = web.HTTPSeeOther(safe_next(text_field(form, "next")))
    response.set_cookie(
        i18n.LANG_COOKIE,
        language,
        samesite="Strict",
        path="/",
        max_age=365 * 24 * 3600,
        secure=state_of(request).secure_cookies,
    )
    raise response


# -- users (admins) -------------------------------------------------------------------


async def _users_page(
    request: web.Request, *, error: str | None = None, status: int = 200, username: str = ""
) -> web.Response:
    users = await read(request, list_users)
    owners = await asyncio.to_thread(slot_owners, state_of(request))
    context = {
        "users": users,
        "roles": ROLES,
        "error": error,
        "username": username,
        "slot_owners": owners,
    }
    await practice_zone(request)  # the page shows times in it
    return render(request, "users.html", context, status=status)


@routes.get("/users")
@require_role(ADMIN)
async def users_page(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@routes.post("/users")
@require_role(ADMIN)
async def create_user(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    form = await request.post()
    username, password, role = (
        text_field(form, "username"),
        text_field(form, "password"),
        text_field(form, "role"),
    )
    translate = translator_of(request)
    try:
        name = check_new_user(username, password, role)
    except BadUserInput as exc:
        message = translate(PASSPHRASE_ERRORS[str(exc)])
        return await _users_page(request, error=message, status=400, username=username)
    password_hash = await asyncio.to_thread(state.hasher.hash, password)
    try:
        await submit(request, insert_user_op(name, role, password_hash))
    except UserExists:
        message = translate("This username is already taken.")
        return await _users_page(request, error=message, status=409, username=username)
    if role == ADMIN:
        # Their own keystore slot: this admin can unlock the box after a power cut too.
        await asyncio.to_thread(seal_slot, state, name, password)
    await audit(request, "user.create", name, {"role": role, "unlock_slot": role == ADMIN})
    session_of(request).flash("success", "User created.")
    raise web.HTTPSeeOther("/users")


async def _set_disabled(request: web.Request, disabled: bool) -> web.StreamResponse:
    state = state_of(request)
    name = request.match_info["username"]
    if name == session_of(request).username:
        session_of(request).flash("error", "You cannot disable your own account.")
        raise web.HTTPSeeOther("/users")
    if disabled and not await disable_slot(request, name):
        raise web.HTTPSeeOther("/users")
    try:
        await submit(request, set_disabled_op(name, disabled))
    except UnknownUser:
        raise web.HTTPNotFound() from None
    if disabled:
        state.sessions.end_user(name)
        await persist.save_now(request)  # a power cut now must not bring the sessions back
    await audit(request, "user.disable" if disabled else "user.enable", name)
    session_of(request).flash("success", "User disabled." if disabled else "User enabled.")
    raise web.HTTPSeeOther("/users")


@routes.post("/users/{username}/disable")
@require_role(ADMIN)
async def disable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, True)


@routes.post("/users/{username}/enable")
@require_role(ADMIN)
async def enable_user(request: web.Request) -> web.StreamResponse:
    return await _set_disabled(request, False)
