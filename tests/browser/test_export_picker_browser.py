"""A sealed export chosen through the /exports pickers, in real Chromium, as a lawyer
does: type a few letters of the person, pick the name the box offers, read how many
messages will be exported (counted on the box for that person alone), narrow it by
days and see it change, start the export, download it, and find in the bundle the
number the page announced. A conversation typed but not picked is resolved by the box
(the form without JavaScript): several matches are refused with a message saying so
and nothing is exported; a typed OWNER/REF that names one is exported.

The box is the records-office journey's (records_office_helpers: two phones, four
2015 conversations, five records on 2 March 2015).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, pick, shot
from test_records_office_browser import RunningBox

from records_office_helpers import PETIT_TEXT
from strongroom.office.verify_export import verify_bundle

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "none": "0 message sera exporté",
        "one": "1 message sera exporté",
        "several": "Plusieurs conversations correspondent",
    },
    "en": {
        "none": "0 messages will be exported",
        "one": "1 message will be exported",
        "several": "Several conversations match",
    },
}


def _count(page: Any) -> tuple[str, str]:
    """The count the page shows: (the number the box answered, the sentence)."""
    shown = page.locator("#export-count")
    return shown.get_attribute("data-count") or "", shown.inner_text().replace("\xa0", " ")


def _download(page: Any, where: Path) -> Path:
    page.click("#start-export")
    page.wait_for_selector("#download", timeout=30_000)
    with page.expect_download() as download_info:
        page.click("#download")
    download_info.value.save_as(str(where))
    return where


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_lawyer_exports_what_she_picked_by_typing(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    with RunningBox(tmp_path / "box") as live:
        running = live.box
        context, page = admin_page(browser, running.url, language, downloads=True)
        page.goto(running.url + "/exports")
        assert page.locator("main select, main option").count() == 0  # the form searches

        # -- a person, picked by her first letters: the count is hers -----------------------
        pick(page, "#export-person", "dr.m", "dr.martin")
        assert page.is_checked("#export-kind-person")  # typing there chose "a person"
        page.wait_for_function("document.getElementById('export-count').dataset.count")
        announced, _ = _count(page)
        assert int(announced) >= 3
        # Narrowed to 2016, where she has nothing: the page says so before any export.
        page.fill("#export-since", "2016-01-01")
        page.dispatch_event("#export-since", "change")
        page.wait_for_selector("#export-count[data-count='0']")
        assert _count(page) == ("0", text["none"])
        page.fill("#export-since", "")
        page.dispatch_event("#export-since", "change")
        page.wait_for_selector(f"#export-count[data-count='{announced}']")
        page.fill("#recipient", "CNIL")
        page.fill("#reason", "Demande d'accès")
        shot(page, language, "export-person-picker")
        bundle = _download(page, tmp_path / "person.zip")
        report = verify_bundle(bundle)
        assert report.ok and report.records == int(announced), report.problems

        # -- typed, not picked: "maitre" names three conversations, the box says so ---------
        page.goto(running.url + "/exports")
        page.fill("#export-conversation", "maitre")
        page.keyboard.press("Escape")
        page.fill("#recipient", "Tribunal")
        page.fill("#reason", "Trop vague")
        page.click("#start-export")
        assert text["several"] in page.inner_text(".flash-error")
        assert page.url.endswith("/exports")
        assert running.audit_actions().count("export") == 1  # the person's only

        # -- typed and unique without picking: the box resolves "maitre.durand/c-petit" -----
        pick(page, "#export-conversation", "m. p", "maitre.durand ↔ M. Petit")
        page.wait_for_selector("#export-count[data-count='1']")
        assert _count(page) == ("1", text["one"])
        page.fill("#export-conversation", "maitre.durand/c-petit")  # and typed over
        page.keyboard.press("Escape")
        assert page.input_value("#export-conversation-id") == ""
        page.fill("#recipient", "Tribunal")
        page.fill("#reason", "RG 15/042")
        bundle = _download(page, tmp_path / "petit.zip")
        report = verify_bundle(bundle)
        assert report.ok and report.records == 1, report.problems
        assert running.audit_actions().count("export") == 2
        with zipfile.ZipFile(bundle) as zf:
            html = zf.read(next(n for n in zf.namelist() if n.endswith("records.html")))
        assert PETIT_TEXT in html.decode()
        context.close()
