"""First run (no identity yet) and the unlock page (identity sealed, box locked).

Wizard: language -> create (24 words shown once, then 3 of them confirmed) or
restore (24 words, `restore_views`) -> first admin (the same passphrase seals the keystore) ->
practice name, backup drive, unlock mode (`practice_views`) -> done (what next). Its
progress lives in the visitor's server-side session; the entropy is dropped from memory
as soon as the keystore is sealed.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from strongroom.box import BoxBusy
from strongroom.identity import (
    WORD_COUNT,
    KeystoreError,
    KeystoreExists,
    WrongPassphrase,
    entropy_to_words,
    lookup_word,
    new_entropy,
)
from strongroom.unlock import BoxPhase
from strongroom.web import i18n, persist
from strongroom.web.auth import ADMIN, SESSION_KEY, client_address, require_role, session_of
from strongroom.web.forms import text_field
from strongroom.web.i18n import N_
from strongroom.web.kit_views import KIT, allow_kit
from strongroom.web.onboarding import checklist
from strongroom.web.render import render, translator_of
from strongroom.web.state import audit, read, state_of, submit
from strongroom.web.throttle import locked_message
from strongroom.web.unlock_page import UNLOCK_WAIT_S, opening_under_way, unlock_page
from strongroom.web.users import (
    BadUserInput,
    check_new_user,
    insert_user_op,
    normalise_username,
)

routes = web.RouteTableDef()
CONFIRM_COUNT = 3
WIZARD = "wizard"

WORDS_ERRORS = {
    "wrong_count": N_("24 words are needed; %(count)s were given."),
    "unknown_word": N_("Word %(position)s (“%(word)s”) is not in the word list."),
    "mixed_languages": N_(
        "Word %(position)s (“%(word)s”) is from the other language: all 24 words must come "
        "from the same list."
    ),
    "bad_checksum": N_(
        "The words do not check out: the last word is wrong, or a word was mistyped, "
        "or two words were swapped."
    ),
}
PASSPHRASE_ERRORS = {
    "too_short": N_("The passphrase needs at least 12 characters."),
    "one_class": N_("Mix letters with digits or symbols, or use 20 characters or more."),
    "username": N_(
        "The username must be 1 to 64 characters: lower-case letters, digits, dot, dash, "
        "underscore."
    ),
    "role": N_("Unknown role."),
    "mismatch": N_("The two passphrases differ."),
}


def _wizard(request: web.Request) -> dict[str, Any]:
    data: dict[str, Any] = session_of(request).data.setdefault(WIZARD, {})
    return data


def _word_language(wizard: dict[str, Any], request: web.Request) -> str:
    language = wizard.get("language") or translator_of(request).language
    return i18n.WORD_LIST_FOR.get(language, "french")


# -- language ---------------------------------------------------------------------


@routes.get("/setup")
async def setup_start(request: web.Request) -> web.StreamResponse:
    return render(request, "setup_language.html", {"step": 1})


@routes.post("/setup/language")
async def setup_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    language = text_field(form, "language")
    if language not in i18n.LANGUAGES:
        language = i18n.DEFAULT_LANGUAGE
    _wizard(request)["language"] = language
    response = web.HTTPSeeOther("/setup/identity")
    response.set_cookie(i18n.LANG_COOKIE, language, samesite="Strict", path="/", max_age=31536000)
    raise response


@routes.get("/setup/identity")
async def setup_identity(request: web.Request) -> web.StreamResponse:
    return render(request, "setup_identity.html", {"step": 2})


# -- create: words shown once, then three confirmed --------------------------------


@routes.post("/setup/create")
async def setup_create(request: web.Request) -> web.StreamResponse:
    wizard = _wizard(request)
    picker = secrets.SystemRandom()
    wizard.update(
        mode="create",
        entropy=new_entropy(),
        positions=sorted(picker.sample(range(WORD_COUNT), CONFIRM_COUNT)),
        confirmed=False,
    )
    raise web.HTTPSeeOther("/setup/words")


@routes.get("/setup/words")
async def setup_words(request: web.Request) -> web.StreamResponse:
    wizard = _wizard(request)
    if wizard.get("mode") != "create" or wizard.get("confirmed"):
        raise web.HTTPSeeOther("/setup/identity")
    words = entropy_to_words(wizard["entropy"], _word_language(wizard, request))
    return render(request, "setup_words.html", {"step": 2, "words": words})


@routes.get("/setup/confirm")
async def setup_confirm_form(request: web.Request) -> web.StreamResponse:
    wizard = _wizard(request)
    if wizard.get("mode") != "create" or wizard.get("confirmed"):
        raise web.HTTPSeeOther("/setup/identity")
    return _confirm_page(request, wizard, error=False, status=200)


def _confirm_page(
    request: web.Request, wizard: dict[str, Any], *, error: bool, status: int
) -> web.Response:
    positions = [p + 1 for p in wizard["positions"]]
    return render(
        request,
        "setup_confirm.html",
        {"step": 2, "positions": positions, "error": error},
        status=status,
    )


@routes.post("/setup/confirm")
async def setup_confirm(request: web.Request) -> web.StreamResponse:
    wizard = _wizard(request)
    if wizard.get("mode") != "create" or wizard.get("confirmed"):
        raise web.HTTPSeeOther("/setup/identity")
    form = await request.post()
    language = _word_language(wizard, request)
    words = entropy_to_words(wizard["entropy"], language)
    ok = True
    for position in wizard["positions"]:
        typed = text_field(form, f"word_{position + 1}")
        ok &= lookup_word(typed, language) == words[position]
    if not ok:
        return _confirm_page(request, wizard, error=True, status=400)
    wizard["confirmed"] = True
    raise web.HTTPSeeOther("/setup/admin")


# -- restore: see restore_views (the 24 words, and optionally a backup) -------------------


# -- first admin: seals the identity ---------------------------------------------------


@routes.get("/setup/admin")
async def setup_admin_form(request: web.Request) -> web.StreamResponse:
    if not _wizard(request).get("confirmed"):
        raise web.HTTPSeeOther("/setup/identity")
    return render(request, "setup_admin.html", {"step": 3, "error": None, "username": ""})


@routes.post("/setup/admin")
async def setup_admin(request: web.Request) -> web.StreamResponse:
    wizard = _wizard(request)
    if not wizard.get("confirmed"):
        raise web.HTTPSeeOther("/setup/identity")
    state = state_of(request)
    form = await request.post()
    username, password = text_field(form, "username"), text_field(form, "password")
    try:
        if password != text_field(form, "password_again"):
            raise BadUserInput("mismatch")
        name = check_new_user(username, password, ADMIN)
    except BadUserInput as exc:
        message = translator_of(request)(PASSPHRASE_ERRORS[str(exc)])
        context = {"step": 3, "error": message, "username": username}
        return render(request, "setup_admin.html", context, status=400)
    entropy: bytes = wizard["entropy"]
    try:
        # Argon2id (about a second on a Pi) in a worker thread, so the web UI and
        # the panel keep running; opening stays on the loop thread: it runs the
        # box's on_unlock callbacks (the peer service starts), which belong there.
        keys = await asyncio.to_thread(
            state.box.seal_identity, entropy, password, owner=name, **state.keystore_limits
        )
    except KeystoreExists:
        raise web.HTTPSeeOther("/unlock") from None
    state.box.open_with(keys)
    password_hash = await asyncio.to_thread(state.hasher.hash, password)
    await submit(request, insert_user_op(name, ADMIN, password_hash))
    wizard.pop("entropy", None)
    wizard.pop("positions", None)
    old = session_of(request)
    request[SESSION_KEY] = state.sessions.log_in(old, name, ADMIN)
    allow_kit(request, request[SESSION_KEY].data, _word_language(wizard, request))
    await audit(request, "setup.identity", wizard.get("mode", ""), {"admin": name})
    raise web.HTTPSeeOther("/setup/practice")


# -- practice name and done ---------------------------------------------------------------


@routes.get("/setup/done")
@require_role(ADMIN)
async def setup_done(request: web.Request) -> web.StreamResponse:
    """The wizard's end: what next (the same checklist as the dashboard)."""
    session_of(request).data.pop(WIZARD, None)  # the menu appears from here on
    in_config = state_of(request).box.config.backup_target is not None
    steps = await read(request, lambda conn: checklist(conn, backup_in_config=in_config))
    kit = session_of(request).data.get(KIT, {}).get("until", 0) > state_of(request).clock()
    return render(request, "setup_done.html", {"step": 5, "checklist": steps, "kit": kit})


# -- unlock (attended mode) ------------------------------------------------------------------


@routes.get("/unlock")
async def unlock_form(request: web.Request) -> web.StreamResponse:
    return render(request, "unlock.html", unlock_page(request, None))


@routes.post("/unlock")
async def unlock(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    limiter, address = state.unlock_limiter, client_address(request)
    translate = translator_of(request)
    if opening_under_way(state.box):  # a second unlock while the archive is being updated
        return render(request, "unlock.html", unlock_page(request, None), status=409)
    form = await request.post()
    passphrase = text_field(form, "passphrase")
    # Any administrator's passphrase opens the box: their own slot is tried first.
    owner = normalise_username(text_field(form, "username")) or None
    # Counted per slot owner and address; names without a slot share one counter
    # (they try every slot), so inventing names buys no extra guesses.
    owners = await asyncio.to_thread(lambda: state.box.keystore().owners)
    account = owner if owner in owners else "*"
    wait = limiter.wait_s(account, address)
    if wait > 0:
        message = locked_message(translate, wait)
        return render(request, "unlock.html", unlock_page(request, message), status=429)
    try:
        keys = await asyncio.to_thread(state.box.keys_for, passphrase, owner)  # see setup_admin
    except WrongPassphrase:
        lock = limiter.failed(account, address)
        await persist.save_now(request)
        message = translate("Wrong passphrase.")
        if lock > 0:
            message += " " + locked_message(translate, lock)
        return render(request, "unlock.html", unlock_page(request, message), status=403)
    except KeystoreError:
        message = translate("The sealed identity cannot be read. Restore from the 24 words.")
        return render(request, "unlock.html", unlock_page(request, message), status=500)
    limiter.succeeded(account, address)
    if state.box.phase is BoxPhase.READY:
        raise web.HTTPSeeOther("/login")
    box, actor = state.box, f"anonymous@{request.remote or '?'}"

    async def audited() -> None:  # on the box's task: the request may be long gone
        await box.audit(actor, "box.unlock", owner or "", {"from": address})

    try:
        opening = box.begin_open(keys, then=audited)
    except BoxBusy:
        return render(request, "unlock.html", unlock_page(request, None), status=409)
    # Opening takes milliseconds, unless an upgrade brought a migration (minutes on a
    # Pi): then the unlock page says so and refreshes itself until the box is ready.
    await asyncio.wait({opening}, timeout=UNLOCK_WAIT_S)
    if not opening.done():
        raise web.HTTPSeeOther("/unlock")
    if opening.cancelled() or opening.exception() is not None:
        return render(request, "unlock.html", unlock_page(request, None), status=409)
    session_of(request).flash("success", "The box is unlocked. Please log in.")
    raise web.HTTPSeeOther("/login")
