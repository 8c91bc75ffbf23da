"""The recovery sheet offered in the wizard, in real Chromium (FR and EN, 390 px): the
print view fits a phone, the PDF downloads and reads back with the words on screen."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE_WIDTH, no_sideways_scroll, shot

from devbox_process import DevBoxProcess, free_port

pytestmark = pytest.mark.browser

TITLE = {"fr": "Fiche de secours Strongroom", "en": "Strongroom recovery sheet"}


def pdf_words(path: Path) -> str:
    out = subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=30
    )
    return " ".join(out.stdout.split())


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_wizard_offers_the_recovery_sheet(browser: Any, tmp_path: Path, language: str) -> None:
    box = DevBoxProcess(tmp_path / "dev", "--fresh", "--port", str(free_port()))
    try:
        url = box.wait_url()
        context = browser.new_context(
            locale=language, viewport={"width": PHONE_WIDTH, "height": 844}, accept_downloads=True
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/")
        page.check(f"input[name=language][value={language}]")
        page.click("button[type=submit].primary")
        page.click("form[action='/setup/create'] button")
        words = page.locator("#words .w").all_inner_texts()
        no_sideways_scroll(page)
        shot(page, language, "kit-01-words-390")
        with page.expect_download() as download:
            page.click("#kit-pdf")
        saved = tmp_path / "sheet.pdf"
        download.value.save_as(saved)
        text = pdf_words(saved)
        assert TITLE[language] in text
        for number, word in enumerate(words, start=1):
            assert re.search(rf"\b{number}\. {re.escape(word)}\b", text), word
        with context.expect_page() as popup:
            page.click("#print-kit")
        sheet = popup.value
        sheet.wait_for_load_state()
        assert sheet.locator("#words .w").all_inner_texts() == words
        no_sideways_scroll(sheet)
        shot(sheet, language, "kit-02-print-view-390")
        sheet.emulate_media(media="print")
        assert not sheet.locator("header.topbar").is_visible()  # only the sheet is printed
        context.close()
    finally:
        assert box.stop() == 0
