"""Rendering pages: the Jinja environment, what every template sees, formatting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web
from babel.dates import format_datetime
from babel.numbers import format_decimal

from strongroom.identity import BoxKeys
from strongroom.office.export_render import zone
from strongroom.web import codes, i18n
from strongroom.web.auth import ADMIN, ARCHIVIST, AUDITOR, session_of
from strongroom.web.csrf import CSRF_FIELD
from strongroom.web.i18n import N_
from strongroom.web.practice_zone import zone_name_of
from strongroom.web.state import state_of

TEMPLATE_DIR = Path(__file__).parent / "templates"
TRANSLATOR_KEY: web.RequestKey[i18n.Translator] = web.RequestKey("translator", i18n.Translator)

# (path, msgid, roles): the navigation bar; each handler still checks the role itself.
NAVIGATION: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("/dashboard", "Dashboard", frozenset({ADMIN})),
    ("/devices", "Devices", frozenset({ADMIN})),
    ("/archive", "Archive", frozenset({ADMIN, ARCHIVIST})),
    ("/exports", "Exports", frozenset({ADMIN, ARCHIVIST})),
    ("/office", "Records office", frozenset({ADMIN, ARCHIVIST, AUDITOR})),
    ("/backups", "Backups", frozenset({ADMIN})),
    ("/audit", "Audit trail", frozenset({ADMIN, AUDITOR})),
    ("/integrity", "Integrity", frozenset({ADMIN, AUDITOR})),
    ("/report", "GDPR register", frozenset({ADMIN, ARCHIVIST, AUDITOR})),
    ("/users", "Users", frozenset({ADMIN})),
    ("/identity", "Identity", frozenset({ADMIN, ARCHIVIST, AUDITOR})),
    ("/reach", "Remote reach", frozenset({ADMIN})),
)


ROLE_NAMES = {ADMIN: N_("Administrator"), ARCHIVIST: N_("Archivist"), AUDITOR: N_("Auditor")}
# Each language is offered under its own name.
LANGUAGE_NAMES = {"fr": N_("Français"), "en": N_("English")}


SETUP_STEPS = (N_("Language"), N_("Identity"), N_("Administrator"), N_("Practice"), N_("Done"))
JOB_NAMES = {
    "export": N_("Sealed export"),
    "verify": N_("Integrity check"),
    "backup": N_("Backup"),
    "restore": N_("Restore"),
    "destruction": N_("Destruction"),
    "retention": N_("Retention run"),
}
JOB_STATES = {"running": N_("running"), "done": N_("finished"), "failed": N_("failed")}
DURATION_UNITS = {"days": N_("days"), "months": N_("months"), "years": N_("years")}
START_EVENTS = {
    "record_date": N_("the record's date"),
    "last_activity": N_("the last activity"),
    "matter_closed": N_("the closing of the matter"),
}
END_ACTIONS = {"destroy": N_("destroy"), "review": N_("review")}


def translator_of(request: web.Request) -> i18n.Translator:
    return request[TRANSLATOR_KEY]


def _datetime(ms: int | None, language: str, zone: dt.tzinfo) -> str:
    """A moment for a person, in `zone` (the practice's: never the box's clock zone)."""
    if ms is None:
        return "—"
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).astimezone(zone)
    return str(format_datetime(moment, format="medium", locale=language))


def _bytes(size: int | None, language: str) -> str:
    if size is None:
        return "—"
    value = float(size)
    # French counts octets: o, Kio, Mio, Gio, Tio; a no-break space keeps number and unit together.
    units = (
        ("o", "Kio", "Mio", "Gio", "Tio") if language == "fr" else ("B", "KiB", "MiB", "GiB", "TiB")
    )
    for unit in units:
        if value < 1024 or unit == units[-1]:
            digits = "#,##0" if unit == units[0] else "#,##0.0"
            return f"{format_decimal(value, format=digits, locale=language)}\u00a0{unit}"
        value /= 1024
    return str(size)


def _number(value: float | int | None, language: str) -> str:
    if value is None:
        return "—"
    return str(format_decimal(value, locale=language))


def signing_fingerprint(keys: BoxKeys | None) -> str | None:
    """The export-signing key's SHA-256 fingerprint, once the box is unlocked."""
    from strongroom.office.sealed import box_key_fingerprint

    return box_key_fingerprint(keys.signing_public) if keys is not None else None


class _LazyText:
    """A template value computed when the template prints it, not before."""

    def __init__(self, get: Callable[[], str]) -> None:
        self._get = get

    def __str__(self) -> str:
        return self._get()

    def __html__(self) -> str:
        return str(markupsafe.escape(self._get()))


def page_context(request: web.Request) -> dict[str, Any]:
    """What every template sees: translation, session, CSRF token, navigation, box facts."""
    translator = translator_of(request)
    session = session_of(request)
    state = state_of(request)
    language = translator.language
    # The practice's zone is read only if the page shows a time (web/practice_zone.py).
    zone_name = _LazyText(lambda: zone_name_of(request))
    nav = [
        (path, label) for path, label, roles in NAVIGATION if session.role and session.role in roles
    ]
    if (session.data.get("wizard") or {}).get("mode") == "create":
        nav = []  # the first-run wizard is walked to its end, not left half-way by the menu
    return {
        "_": translator.gettext,
        "ngettext": translator.ngettext,
        "lang": language,
        "other_languages": [code for code in i18n.LANGUAGES if code != language],
        "session": session,
        "user": session.username,
        "role": session.role,
        "csrf_field": CSRF_FIELD,
        "csrf_token": session.csrf_token,
        "flashes": session.take_flashes(),
        "nav": nav,
        "path": request.path,
        "path_qs": request.path_qs,
        "phase": state.box.phase.value,
        "box_fingerprint": state.box.fingerprint,
        "signing_fingerprint": signing_fingerprint(state.box.keys),
        "tls_fingerprint": state.tls_fingerprint,
        "tls_key_fingerprint": state.tls_key_fingerprint,
        "role_names": ROLE_NAMES,
        "job_names": JOB_NAMES,
        "setup_steps": SETUP_STEPS,
        "job_states": JOB_STATES,
        "duration_units": DURATION_UNITS,
        "start_events": START_EVENTS,
        "end_actions": END_ACTIONS,
        "language_names": LANGUAGE_NAMES,
        "static_url": lambda name: str(request.app.router["static"].url_for(filename=name)),
        "fmt_datetime": lambda ms: _datetime(ms, language, zone(str(zone_name))),  # practice's
        "time_zone": zone_name,  # shown beside times where a lawyer needs certainty
        "fmt_bytes": lambda size: _bytes(size, language),
        "fmt_number": lambda value: _number(value, language),
        "code_name": lambda table, code: codes.name_of(translator, table, code),
        "audit_details": lambda raw: codes.details(translator, raw),
        # A label's colon: French puts a no-break space before it.
        "colon": "\u00a0:" if language == "fr" else ":",
    }


def setup_templates(app: web.Application) -> jinja2.Environment:
    return aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )


def render(
    request: web.Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    # The page context is computed here rather than by aiohttp_jinja2's context
    # processors, whose middleware is innermost and so misses error pages that
    # outer middlewares render (CSRF refusals, 403).
    full = {**page_context(request), **(context or {})}
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response
