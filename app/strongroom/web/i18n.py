"""Translations for the web UI: one gettext catalogue per language.

The msgids are the English source strings; `locale/en` maps them to
themselves (so a reviewer sees the whole English text in one file), and
`locale/fr` holds the French. The catalogues are read once at start-up with
Babel's .po reader: no compile step, nothing to forget to rebuild.

The language comes from the `lang` cookie (the switcher), else the browser's
Accept-Language, else French: the box is sold to French practices first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES: tuple[str, ...] = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
LANG_COOKIE = "lang"
DOMAIN = "strongroom"
LOCALE_DIR = Path(__file__).parent / "locale"
# The 24-word lists come in the same two languages.
WORD_LIST_FOR = {"fr": "french", "en": "english"}


def catalogue_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(language: str) -> dict[str, str]:
    """msgid -> msgstr for one language (plural entries are not used by the UI)."""
    with catalogue_path(language).open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    out: dict[str, str] = {}
    for message in catalog:
        if message.id and isinstance(message.id, str) and isinstance(message.string, str):
            out[message.id] = message.string
    return out


@dataclass(frozen=True)
class Translator:
    language: str
    messages: Mapping[str, str]

    def gettext(self, msgid: str, /, **params: Any) -> str:
        """The translation of msgid (msgid itself if missing), with %(name)s filled in."""
        text = self.messages.get(msgid) or msgid
        return text % params if params else text

    __call__ = gettext


@cache
def translator(language: str) -> Translator:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    return Translator(language, read_catalogue(language))


def load_all() -> dict[str, Translator]:
    """Read every catalogue now, so a broken .po fails at start-up, not on a page."""
    return {language: translator(language) for language in LANGUAGES}


def parse_accept_language(header: str) -> list[str]:
    """Primary language tags of an Accept-Language header, best first."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        piece = part.strip()
        if not piece:
            continue
        tag, _, params = piece.partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and quality > 0:
            ranked.append((-quality, position, primary))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    for tag in parse_accept_language(accept_language or ""):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def N_(msgid: str) -> str:
    """Mark a string for translation where it is defined; translate it where shown."""
    return msgid
