"""Accessibility in real Chromium with axe-core (shipped by axe-playwright-python): no
serious or critical violation on any page, FR and EN; the wizard can be walked with the
keyboard alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    PHONE_WIDTH,
    LiveBox,
    no_sideways_scroll,
    shot,
)
from test_pages_browser import PAGES, seeded_box

from web_helpers import ADMIN_PASSWORD, new_box

pytestmark = pytest.mark.browser
BLOCKING = {"serious", "critical"}


def violations(page: Any) -> list[str]:
    """axe-core's serious/critical findings; the page must also fit its width."""
    from axe_playwright_python.sync_playwright import Axe

    no_sideways_scroll(page)
    results = Axe().run(page)
    assert results.response["testEngine"]["name"] == "axe-core"  # it really ran
    found = results.response.get("violations", [])
    return [
        f"{page.url.split('?')[0]}: {v['id']} ({v['impact']}) {v['help']} x{len(v['nodes'])}"
        for v in found
        if v.get("impact") in BLOCKING
    ]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_no_serious_violation_on_any_page(browser: Any, tmp_path: Path, language: str) -> None:
    with ThreadPoolExecutor(1) as pool:
        box = pool.submit(seeded_box, tmp_path / "data").result(60)
    with LiveBox(box) as live:
        context = browser.new_context(locale=language, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(live.url + "/login")
        found = violations(page)
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button[type=submit].primary")
        for path in PAGES:
            page.goto(live.url + path)
            found += violations(page)
        context.close()
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_wizard_with_the_keyboard_alone(browser: Any, tmp_path: Path, language: str) -> None:
    with ThreadPoolExecutor(1) as pool:
        box = pool.submit(new_box, tmp_path / "data", ready=False).result(60)
    with LiveBox(box) as live:
        context = browser.new_context(
            locale=language, viewport={"width": PHONE_WIDTH, "height": 844}
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live.url + "/")
        found = violations(page)

        def tab_to(selector: str) -> None:
            """Press Tab until `selector` has the focus (as a keyboard user would)."""
            for _ in range(60):
                page.keyboard.press("Tab")
                if page.evaluate(f"document.activeElement.matches({selector!r})"):
                    return
            raise AssertionError(f"{selector} cannot be reached with Tab on {page.url}")

        tab_to(f"input[name=language][value={language}]")
        page.keyboard.press("Space")
        tab_to("button[type=submit].primary")
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/identity")
        found += violations(page)
        tab_to("form[action='/setup/create'] button")
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/words")
        found += violations(page)
        words = page.locator("#words .w").all_inner_texts()
        tab_to("a[href='/setup/confirm']")
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/confirm")
        found += violations(page)
        for field in page.locator("input[name^=word_]").all():
            name = field.get_attribute("name")
            tab_to(f"input[name={name}]")
            page.keyboard.type(words[int(name.split("_")[1]) - 1])
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/admin")
        found += violations(page)
        for selector, value in (
            ("#username", "gerante"),
            ("#password", ADMIN_PASSWORD),
            ("#password_again", ADMIN_PASSWORD),
        ):
            tab_to(selector)
            page.keyboard.type(value)
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/practice")
        found += violations(page)
        tab_to("#practice_name")
        page.keyboard.type("Cabinet Durand")
        page.keyboard.press("Enter")
        page.wait_for_url("**/setup/done")
        found += violations(page)
        shot(page, language, "a11y-keyboard-done-390")
        context.close()
    assert found == [], "\n".join(found)
