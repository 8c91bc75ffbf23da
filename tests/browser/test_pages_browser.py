"""Every page reads well at 390 px and at desktop width, FR and EN: nothing scrolls
sideways, long unbroken names wrap, error pages are the box's own."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE_WIDTH, LiveBox, admin_page, shot

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.pairing.service import PairingService
from web_helpers import new_box

pytestmark = pytest.mark.browser

LONG = "Marie-Charlotte" + "x" * 485  # a 500-character name with no space to break at
PAGES = (
    "/dashboard",
    "/devices",
    "/devices/1/revoke",
    "/archive",
    "/archive?q=Martin",
    "/archive/records/1",
    "/exports",
    "/office",
    "/backups",
    "/audit",
    "/integrity",
    "/report",  # the art. 30 register: a standalone document (office/report_render.py)
    "/users",
    "/account",
    "/no-such-page",
    "/archive?q=" + "a" * 10_000,  # longer than aiohttp's 8190-byte request line
    "/logout",  # GET on a POST-only address: 405
)
ERROR_PAGES = {"/no-such-page": 404, "/logout": 405}


def seeded_box(data_dir: Path) -> Box:
    box = new_box(data_dir)
    box.pairing = PairingService(time.time)
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre." + LONG[:60], name="Pixel " + LONG)
    for text in ("Réunion avec M. Martin mardi", "Pièce jointe: " + "y" * 400):
        record = message(key, text, peer=LONG[:200], conv="c-" + "z" * 120)
        archive.write(writes.store_record(record, device_id, "maitre.durand"))
    archive.write(place_hold(HoldSpec("person", "Contentieux " + LONG, person=LONG), "admin"))
    return box


def widths(page: Any) -> tuple[int, int]:
    scroll, inner = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return int(scroll), int(inner)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_no_page_scrolls_sideways(browser: Any, tmp_path: Path, language: str) -> None:
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop runs on this thread
        box = pool.submit(seeded_box, tmp_path / "data").result(60)
    with LiveBox(box) as live:
        too_wide: list[str] = []
        for width in (PHONE_WIDTH, 1280):
            context, page = admin_page(browser, live.url, language, width=width, height=900)
            for path in PAGES:
                response = page.goto(live.url + path)
                expected = ERROR_PAGES.get(path, 414 if len(path) > 8190 else 200)
                assert response.status == expected, path
                if expected != 200:  # the box's own page, never aiohttp's bare text
                    assert page.locator("#error-page").count() == 1, path
                scroll, inner = widths(page)
                if scroll > inner:
                    too_wide.append(f"{path} at {width}: {scroll} px")
                if width == PHONE_WIDTH:
                    name = path.strip("/").replace("/", "-").replace("?", "-")[:40] or "home"
                    shot(page, language, f"page-390-{name}")
            context.close()
        assert too_wide == [], "\n".join(too_wide)
