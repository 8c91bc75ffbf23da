"""Translations for the web UI: one gettext catalogue per language.

The msgids are the English source strings; `locale/en` maps them to
themselves (so a reviewer sees the whole English text in one file), and
`locale/fr` holds the French. The catalogues are read once at start-up with
Babel's .po reader: no compile step, nothing to forget to rebuild.

The language comes from the `lang` cookie (the switcher), else the browser's
Accept-Language, else French: the box is sold to French practices first.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


def _read(language: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]], str]:
    with catalogue_path(language).open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    singles: dict[str, str] = {}
    plurals: dict[str, tuple[str, ...]] = {}
    for message in catalog:
        if isinstance(message.id, str) and message.id and isinstance(message.string, str):
            singles[message.id] = message.string
        elif isinstance(message.id, tuple | list) and message.id[0]:
            forms = tuple(str(form) for form in message.string or ())
            plurals[str(message.id[0])] = forms
            singles[str(message.id[0])] = forms[0] if forms else ""
    return singles, plurals, str(catalog.plural_expr)


def read_catalogue(language: str) -> dict[str, str]:
    """msgid -> msgstr for one language (a plural entry under its singular, first form)."""
    return _read(language)[0]


# French typography: a narrow no-break space before ; ! ? and a no-break space
# before : (and inside « »), so a line never starts with the sign. Times (10:30)
# and URLs (http://) have no space before their colon and are left alone.
NBSP, NNBSP = "\u00a0", "\u202f"
_FRENCH_SPACES = (
    (re.compile(r"[ \u00a0\u202f]+([;!?])"), NNBSP + r"\1"),
    (re.compile(r"(?<=[^\s\d/:\u00a0\u202f])([;!?])(?=\s|$)"), NNBSP + r"\1"),
    (re.compile(r"[ \u00a0\u202f]+:"), NBSP + ":"),
    (re.compile(r"(?<=[^\s\d/:\u00a0\u202f%(])(:)(?=\s|$)"), NBSP + r"\1"),
    (re.compile(r"« *"), "«" + NBSP),
    (re.compile(r" *»"), NBSP + "»"),
    # A count and its unit stay on one line: "3 minutes", "12 enregistrements".
    (re.compile(r"(%\(num\)s) (?=\w)"), r"\1" + NBSP),
)


def french_typography(text: str) -> str:
    for pattern, replacement in _FRENCH_SPACES:
        text = pattern.sub(replacement, text)
    return text


_french = cache(french_typography)


@dataclass(frozen=True)
class Translator:
    language: str
    messages: Mapping[str, str]
    plurals: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    plural_index: Callable[[int], int] = lambda n: 0 if n == 1 else 1

    def gettext(self, msgid: str, /, **params: Any) -> str:
        """The translation of msgid (msgid itself if missing), with %(name)s filled in."""
        # Typography applies to our text, not to the names filled into it.
        text = self._finish(self.messages.get(msgid) or msgid)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        """The form for `n` (Babel catalogue, the language's Plural-Forms); %(num)s is n."""
        forms = self.plurals.get(singular)
        index = self.plural_index(n)
        if forms and index < len(forms) and forms[index]:
            text = forms[index]
        else:
            text = singular if n == 1 else plural
        return self._finish(text) % {"num": n, **params}

    def _finish(self, text: str) -> str:
        return _french(text) if self.language == "fr" else text

    __call__ = gettext


@cache
def translator(language: str) -> Translator:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    singles, plurals, expression = _read(language)
    return Translator(language, singles, plurals, gettext.c2py(expression))


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
