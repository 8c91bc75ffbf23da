"""The recovery sheet, offered in the first-run wizard only.

While the words are on screen (before the keystore is sealed) the sheet comes
from the wizard's entropy; after the first admin is created, the admin who ran
the wizard may print it for another hour (the practice name is then on it),
from the unlocked box's keys. Outside the wizard nobody can print the words
again: an admin who could would walk away with the root secret.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from strongroom.identity import derive_box_keys, entropy_to_words
from strongroom.office.practice_days import today_in
from strongroom.web import i18n, settings
from strongroom.web.auth import session_of
from strongroom.web.practice_zone import practice_zone
from strongroom.web.recovery_kit import INTRO, TITLE, KitSheet, kit_pdf
from strongroom.web.render import render, translator_of
from strongroom.web.state import read, state_of

routes = web.RouteTableDef()

KIT = "recovery_kit"  # session data: {"until": epoch s, "words": word-list language}
KIT_WINDOW_S = 3600.0


def allow_kit(request: web.Request, session_data: dict[str, Any], word_language: str) -> None:
    """Called when the wizard seals the identity: the sheet stays printable for an hour."""
    session_data[KIT] = {"until": state_of(request).clock() + KIT_WINDOW_S, "words": word_language}


async def _sheet(request: web.Request) -> KitSheet:
    state, session = state_of(request), session_of(request)
    wizard = session.data.get("wizard") or {}
    kit = session.data.get(KIT) or {}
    practice = ""
    if wizard.get("mode") == "create" and wizard.get("entropy"):
        entropy: bytes = wizard["entropy"]
        language = i18n.WORD_LIST_FOR.get(
            wizard.get("language") or translator_of(request).language, "french"
        )
    elif (
        session.logged_in
        and kit.get("until", 0) > state.clock()
        and state.box.keys is not None
        and state.box.keys.entropy
    ):
        entropy, language = state.box.keys.entropy, str(kit["words"])
        name = await read(request, lambda conn: settings.get_setting(conn, settings.PRACTICE_NAME))
        practice = name or ""
    else:
        raise web.HTTPNotFound()
    # The key's fingerprint, not the certificate's: the certificate is issued again
    # (same key) when the identity is made, minutes after the words step, and at each
    # rename; a sheet carrying a value that changes then would teach that a mismatch
    # is normal. The key's is final from the first start.
    return KitSheet(
        words=entropy_to_words(entropy, language),
        practice_name=practice,
        issued=today_in(await practice_zone(request), state.clock()),  # the practice's date
        box_fingerprint=derive_box_keys(entropy).fingerprint,
        tls_key_fingerprint=state.tls_key_fingerprint,
    )


@routes.get("/setup/kit")
async def kit_page(request: web.Request) -> web.StreamResponse:
    sheet = await _sheet(request)
    translate = translator_of(request)
    context = {
        "sheet": sheet,
        "fields": sheet.fields(translate),
        "kit_title": TITLE,
        "intro": INTRO,
        "instructions": sheet.instructions(),
    }
    return render(request, "recovery_kit.html", context)


@routes.get("/setup/kit.pdf")
async def kit_pdf_download(request: web.Request) -> web.StreamResponse:
    sheet = await _sheet(request)
    translate = translator_of(request)
    body = kit_pdf(sheet, translate)
    name = (
        "strongroom-fiche-de-secours.pdf"
        if translate.language == "fr"
        else ("strongroom-recovery-sheet.pdf")
    )
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
