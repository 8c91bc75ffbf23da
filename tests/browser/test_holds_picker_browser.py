"""Placing legal holds through the /office pickers, in real Chromium, as the office
manager does: type a few letters, pick the conversation the box offers, submit, and
read the hold in the list with what it protects. A value typed but not picked is
resolved by the box (the form without JavaScript): several matches are refused with
a message saying so, nothing placed. The page no longer lists every conversation.

The box is the records-office journey's (records_office_helpers: two phones, four
2015 conversations, five records on 2 March 2015).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, pick, shot
from test_records_office_browser import RunningBox

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "petit": "1\u00a0conversation, 1\u00a0enregistrement",
        "day": "4\u00a0conversations, 5\u00a0enregistrements",
        "several": "Plusieurs conversations correspondent",
        "placed": "Conversation maitre.durand ↔ M. Petit",
    },
    "en": {
        "petit": "1 conversation, 1 record",
        "day": "4 conversations, 5 records",
        "several": "Several conversations match",
        "placed": "Conversation maitre.durand ↔ M. Petit",
    },
}


def _holds(page: Any) -> list[str]:
    return [row.inner_text() for row in page.locator("#holds tbody tr").all()]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_office_manager_holds_a_conversation_found_by_its_first_letters(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    with RunningBox(tmp_path / "box") as live:
        running = live.box
        context, page = admin_page(browser, running.url, language)
        page.goto(running.url + "/office")
        # No list of every conversation in the page: the form searches.
        assert page.locator("#new-hold select[name=conversation]").count() == 0
        assert page.locator("#new-hold option").count() == 4  # the scope's four choices

        # -- "M. P": the box offers Durand's conversation with M. Petit; pick it ---------------
        page.select_option("#hold-scope", "conversation")
        pick(page, "#hold-conv", "m. p", "maitre.durand ↔ M. Petit")
        assert page.input_value("#hold-conv") == "maitre.durand ↔ M. Petit"
        assert page.input_value("#hold-conv-id").isdigit()
        page.fill("#hold-case", "Petit c/ Durand")
        page.fill("#hold-reason", "Contestation de la facture")
        shot(page, language, "office-hold-picker")
        page.click("#new-hold button[type=submit]")
        (row,) = _holds(page)
        assert text["placed"] in row and "Petit c/ Durand" in row
        assert text["petit"] in row

        # -- typed, not picked: "maitre" names three conversations, the box says so -----------
        page.select_option("#hold-scope", "conversation")
        page.fill("#hold-conv", "maitre")
        page.keyboard.press("Escape")
        page.fill("#hold-reason", "Trop vague")
        page.click("#new-hold button[type=submit]")
        assert text["several"] in page.inner_text(".flash-error")
        assert len(_holds(page)) == 1

        # -- typed and unique without picking: the box resolves "maitre.durand/c-petit" -----
        # (a second hold on the same conversation, as for a second case)
        page.select_option("#hold-scope", "conversation")
        page.fill("#hold-conv", "maitre.durand/c-petit")
        page.keyboard.press("Escape")
        page.fill("#hold-reason", "Second dossier")
        page.click("#new-hold button[type=submit]")
        rows = _holds(page)
        assert len(rows) == 2 and text["placed"] in rows[1] and text["petit"] in rows[1]

        # -- a day: every conversation with a record dated 2 March 2015 -----------------------
        page.select_option("#hold-scope", "date_range")
        page.fill("#hold-since", "2015-03-02")
        page.fill("#hold-until", "2015-03-02")
        page.fill("#hold-reason", "Contrôle de l'Ordre")
        page.click("#new-hold button[type=submit]")
        rows = _holds(page)
        assert len(rows) == 3 and text["day"] in rows[2]
        assert running.audit_actions().count("hold.place") == 3
        context.close()
