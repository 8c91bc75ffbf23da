"""More than one person can run the box, in real Chromium against a real `strongroom dev`
process: the wizard's admin creates a second admin; after a restart (a new process,
attended unlock) the second admin unlocks the box, logs in and changes their passphrase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    PHONE_WIDTH,
    no_sideways_scroll,
    shot,
    walk_wizard,
)

from devbox_process import DevBoxProcess, free_port

pytestmark = pytest.mark.browser

CLAIRE = "Claire tient le cabinet 1"
BRUNO = "Bruno garde les clés 2"
TEXT = {
    "fr": {"yes": "oui", "wrong": "Phrase secrète incorrecte.", "changed": "est changée"},
    "en": {"yes": "yes", "wrong": "Wrong passphrase.", "changed": "is changed"},
}


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_second_admin_unlocks_the_box_after_a_restart(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    data, port = tmp_path / "dev", free_port()
    first = DevBoxProcess(data, "--fresh", "--port", str(port))
    try:
        url = first.wait_url()
        context = browser.new_context(locale=language, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        walk_wizard(page, url, language, "claire", CLAIRE)
        # "What next": the checklist, second admin still to do.
        todo = page.locator("#checklist li.todo").evaluate_all(
            "els => els.map(e => e.dataset.step)"
        )
        assert todo == ["backup", "phone", "retention", "second_admin"]
        shot(page, language, "people-00-what-next")
        page.goto(url + "/users")
        page.fill("#new-username", "bruno")
        page.select_option("#new-role", "admin")
        page.fill("#new-password", BRUNO)
        page.click("form[action='/users'] button[type=submit]")
        row = page.locator("tr", has_text="bruno")
        assert text["yes"] in row.inner_text()
        shot(page, language, "people-01-users-two-admins")
        page.click("nav a[href='/dashboard']")
        todo = page.locator("#checklist li.todo").evaluate_all(
            "els => els.map(e => e.dataset.step)"
        )
        assert todo == ["backup", "phone", "retention"]
        context.close()
    finally:
        assert first.stop() == 0

    second = DevBoxProcess(data, "--port", str(port))
    try:
        url = second.wait_url()
        context = browser.new_context(
            locale=language, viewport={"width": PHONE_WIDTH, "height": 844}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url + "/")
        assert page.url.endswith("/unlock")
        no_sideways_scroll(page)
        page.fill("#username", "bruno")
        page.fill("#passphrase", CLAIRE + "x")
        page.click("form[action='/unlock'] button[type=submit]")
        assert text["wrong"] in page.inner_text("main")
        page.fill("#username", "bruno")
        page.fill("#passphrase", BRUNO)
        page.click("form[action='/unlock'] button[type=submit]")
        assert page.url.endswith("/login")
        shot(page, language, "people-02-unlocked-by-bruno-390")
        page.fill("#username", "bruno")
        page.fill("#password", BRUNO)
        page.click("button[type=submit].primary")
        assert page.url.endswith("/dashboard")

        page.click("header a[href='/account']")
        new = "Bruno change tout 3"
        page.fill("#current", BRUNO)
        page.fill("#new", new)
        page.fill("#again", new)
        page.click("form[action='/account/passphrase'] button[type=submit]")
        assert text["changed"] in page.inner_text("main")
        no_sideways_scroll(page)
        shot(page, language, "people-03-account-390")
        context.close()
    finally:
        assert second.stop() == 0
