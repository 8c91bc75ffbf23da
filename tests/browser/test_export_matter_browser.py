"""Export by matter in real Chromium: from the matter's row on the matters page to the
downloaded bundle, titled by the matter, holding its conversations only, and passing
VERIFY.txt's own command lines."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, shot
from test_records_office_browser import RunningBox

from records_office_helpers import HELD_TEXTS, PETIT_TEXT
from strongroom.office.verify_export import verify_bundle
from test_export_matter import verify_txt_passes

pytestmark = pytest.mark.browser


def test_a_matter_is_exported_from_its_row_in_chromium(browser: Any, tmp_path: Path) -> None:
    with RunningBox(tmp_path / "box") as live:
        running = live.box
        context, page = admin_page(browser, running.url, "fr", downloads=True)

        page.goto(running.url + "/office/matters")
        page.fill("#matter-ref", "D-2015-007")
        page.fill("#matter-client", "Dr Martin")
        page.click("#new-matter button[type=submit]")
        page.click("#matters details summary")
        page.fill("#attach-person-1", "dr.martin")
        page.click("#matters button[name=action][value=attach]")

        page.click("a.export-matter")  # « Exporter ce dossier »
        assert page.is_checked("#export-kind-matter")
        assert page.input_value("#export-matter") == "D-2015-007 Dr Martin"
        assert page.input_value("#export-matter-id") == "1"
        # What will be exported, counted for this matter alone: dr.martin's 3 records.
        page.wait_for_selector("#export-count[data-count='3']")
        assert page.inner_text("#export-count").replace("\xa0", " ") == "3 messages seront exportés"
        page.fill("#recipient", "Cour d'appel de Lyon")
        page.fill("#reason", "RG 24/017")
        shot(page, "fr", "export-matter-form")
        page.click("#start-export")
        page.wait_for_selector("#download", timeout=30_000)
        shot(page, "fr", "export-matter-ready")
        with page.expect_download() as download_info:
            page.click("#download")
        bundle = tmp_path / "matter.zip"
        download_info.value.save_as(str(bundle))
        context.close()

    report = verify_bundle(bundle)
    assert report.ok and report.records == 3, report.problems
    with zipfile.ZipFile(bundle) as zf:
        html = zf.read(next(n for n in zf.namelist() if n.endswith("records.html"))).decode()
    assert "Dossier / matter D-2015-007 — Dr Martin" in html
    assert all(text in html for text in HELD_TEXTS[:3])
    assert PETIT_TEXT not in html and HELD_TEXTS[3] not in html
    verify_txt_passes(bundle, tmp_path / "verify")
