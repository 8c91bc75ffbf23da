"""One catalogue per language, complete and consistent; no bare text in templates."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jinja2
import pytest
from pytest_aiohttp import AiohttpClient

from strongroom.web import i18n
from strongroom.web.i18n import choose_language, parse_accept_language, read_catalogue
from web_helpers import new_box, web_app

WEB = Path(i18n.__file__).parent
APP = WEB.parents[1]  # app/: strongroom and strongroom_panel
TEMPLATES = sorted((WEB / "templates").glob("*.html"))
# Calls whose string argument is a msgid (flash(kind, msgid) takes it second).
MARKERS = {"N_", "translate", "gettext"}


def template_msgids() -> set[str]:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    found: set[str] = set()
    for path in TEMPLATES:
        # jinja2.ext.i18n adds extract_translations to the environment at run time.
        extract = env.extract_translations  # type: ignore[attr-defined]
        for _line, _func, msg in extract(path.read_text(encoding="utf-8")):
            first = msg[0] if isinstance(msg, tuple) else msg
            if isinstance(first, str):
                found.add(first)
    return found


def python_msgids() -> set[str]:
    found: set[str] = set()
    for path in sorted(WEB.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "flash" and len(node.args) >= 2:
                candidates = [node.args[1]]
            elif name in MARKERS or (
                isinstance(func, ast.Call) and getattr(func.func, "id", None) == "translator_of"
            ):
                candidates = node.args[:1]
            else:
                continue
            for candidate in candidates:
                options = (
                    [candidate.body, candidate.orelse]
                    if isinstance(candidate, ast.IfExp)
                    else [candidate]
                )
                for option in options:
                    if isinstance(option, ast.Constant) and isinstance(option.value, str):
                        found.add(option.value)
    return found


def test_both_catalogues_have_the_same_msgids_and_no_empty_translation() -> None:
    french, english = read_catalogue("fr"), read_catalogue("en")
    assert set(french) == set(english)
    assert [k for k, v in french.items() if not v.strip()] == []
    assert [k for k, v in english.items() if not v.strip()] == []


def test_every_string_used_is_in_the_catalogues() -> None:
    catalogue = set(read_catalogue("fr"))
    used = template_msgids() | python_msgids()
    assert used - catalogue == set()
    assert len(used) > 250  # the extraction itself works


def app_string_constants() -> set[str]:
    """Every string literal in app/ (implicit concatenations joined, as the AST does)."""
    found: set[str] = set()
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_msgid_in_the_catalogues_is_used_somewhere_in_app() -> None:
    """A text nobody shows any more is dead weight for translators (and misleads them)."""
    used = template_msgids() | app_string_constants()
    for language in ("fr", "en"):
        assert sorted(set(read_catalogue(language)) - used) == [], language


def test_placeholders_survive_translation() -> None:
    placeholder = re.compile(r"%\((\w+)\)s")
    for msgid, text in read_catalogue("fr").items():
        assert sorted(placeholder.findall(msgid)) == sorted(placeholder.findall(text)), msgid


_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.DOTALL)
_TAG = re.compile(r"<[^>]*>", re.DOTALL)
_ATTR_TEXT = re.compile(r'\b(?:placeholder|aria-label|title|alt)="([^"]*)"')


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_bare_text(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    text = _TAG.sub(" ", _JINJA.sub(" ", source))
    words = [w for w in re.findall(r"[^\W\d_]{2,}", text) if w != "Strongroom"]
    assert words == [], f"untranslated text in {path.name}: {words[:10]}"
    for value in _ATTR_TEXT.findall(source):
        assert "{{" in value or not re.search(r"[^\W\d_]", value), f"{path.name}: {value!r}"


def test_accept_language_parsing() -> None:
    assert parse_accept_language("en-GB,en;q=0.9,fr;q=0.8") == ["en", "en", "fr"]
    assert parse_accept_language("de;q=0.9, fr;q=0.95") == ["fr", "de"]
    assert choose_language(None, "de-DE,en;q=0.5") == "en"
    assert choose_language(None, "de-DE") == "fr"  # French first
    assert choose_language(None, None) == "fr"
    assert choose_language("en", "fr") == "en"  # the switcher wins
    assert choose_language("xx", "en") == "en"


async def test_language_from_header_and_switch_cookie(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box = new_box(tmp_path / "data")
    client = await aiohttp_client(web_app(box))
    french = await (await client.get("/login")).text()
    assert '<html lang="fr">' in french and "Se connecter" in french
    english = await (await client.get("/login", headers={"Accept-Language": "en-US,en"})).text()
    assert '<html lang="en">' in english and "Log in" in english
    token = re.search(r'name="csrf_token" value="([^"]+)"', french).group(1)  # type: ignore[union-attr]
    response = await client.post(
        "/lang",
        data={"language": "en", "next": "/login", "csrf_token": token},
        allow_redirects=False,
    )
    assert response.headers["Location"] == "/login"
    switched = await (await client.get("/login", headers={"Accept-Language": "fr"})).text()
    assert '<html lang="en">' in switched
    await box.stop()
