"""Commits the log lost, in real Chromium (fr, en): the Integrity page lists the loss
(tree_head.lost), the admin opens "Acknowledge…", confirms with a note, the page then
lists it as acknowledged, and a check from the page passes; the file stays."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, no_sideways_scroll, shot
from test_records_office_browser import RunningBox

from strongroom.archive.losses import ACTION
from test_kept_head_page import lose_commits

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "lost": "Validations perdues",
        "confirm": "Prendre acte de cette perte\u202f?",
        "done": "Perte prise en compte",
        "by": "Prise en compte par admin le",
    },
    "en": {
        "lost": "Lost commits",
        "confirm": "Acknowledge this loss?",
        "done": "Loss acknowledged",
        "by": "Acknowledged by admin on",
    },
}
NOTE = "Sauvegarde du 5 décembre restaurée ; les téléphones ont renvoyé le reste."


@pytest.mark.parametrize("language", ["fr", "en"])
def test_an_admin_acknowledges_a_loss_on_the_integrity_page(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    with RunningBox(tmp_path / "box", before_start=lose_commits) as live:
        running = live.box
        data_dir = running.runtime.config.data_dir
        context, page = admin_page(browser, running.url, language)
        page.click("nav a[href='/integrity']")
        losses = page.locator("#losses")
        assert text["lost"] in losses.locator("h2").inner_text()
        loss = losses.locator("li[data-loss='tree_head.lost']")
        assert loss.get_attribute("data-state") == "open"
        assert "acknowledged records were lost" in loss.inner_text()
        shot(page, language, "loss-01-open")

        loss.locator("a.button").click()
        assert page.inner_text("h1") == text["confirm"]
        page.fill("#note", NOTE)
        shot(page, language, "loss-02-confirm")
        page.click("#acknowledge-loss button[type=submit]")
        assert page.url.endswith("/integrity")
        assert text["done"] in page.inner_text("main")
        loss = page.locator("#losses li[data-loss='tree_head.lost']")
        assert loss.get_attribute("data-state") == "acknowledged"
        assert text["by"] in loss.inner_text() and loss.locator("[data-note]").inner_text() == NOTE
        assert loss.locator("a.button").count() == 0  # once

        page.click("form:has(input[name=mode][value=full]) button")
        page.wait_for_selector("#job[data-state=done]", timeout=60_000)
        page.goto(running.url + "/integrity")
        newest = page.locator("#verify-runs tbody tr").first
        assert newest.get_attribute("data-ok") == "true"
        assert page.locator("#integrity-failure").count() == 0
        shot(page, language, "loss-03-acknowledged")
        page.set_viewport_size({"width": 390, "height": 900})
        no_sideways_scroll(page)
        context.close()

        assert (data_dir / "tree_head.lost").exists()  # the evidence stays
        with closing(running.box.require_archive().reader()) as conn:
            rows = conn.execute(
                "SELECT actor, target FROM audit_events WHERE action = ?", (ACTION,)
            ).fetchall()
        assert [(str(a), str(t)) for a, t in rows] == [("admin", "tree_head.lost")]
