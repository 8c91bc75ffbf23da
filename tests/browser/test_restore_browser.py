"""Restoring a box from its 24 words and a backup, in real Chromium, at phone width.

Before confirming, the wizard shows what the backup holds (its set and its log size)
and says, in the visitor's language, that phones used after the backup must be
paired again (protocol.md §6.3). After the restore the dashboard keeps saying it
until an administrator dismisses the notice.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE_WIDTH, log_in, no_sideways_scroll, shot
from test_web_browser import FreshBox

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.identity import derive_box_keys, entropy_to_words, new_entropy
from strongroom.office import backup
from strongroom.web.users import create_user
from web_helpers import ADMIN_PASSWORD, CHEAP_HASHER, CHEAP_LIMITS

pytestmark = pytest.mark.browser

BOX_PASSPHRASE = "Nouvelle phrase du boîtier 2026"
TEXT = {
    "fr": {
        "warning": "Les téléphones utilisés après cette sauvegarde devront être appairés",
        "notice": "Ce boîtier a été restauré depuis une sauvegarde",
    },
    "en": {
        "warning": "Phones will have to be paired again if they were used after this backup.",
        "notice": "This box was restored from a backup",
    },
}


def backed_up_box(tmp_path: Path) -> tuple[str, Path, int]:
    """An old box with a phone and a record, backed up to a drive: (words, drive, log size)."""
    entropy = new_entropy()
    box = Box(BoxConfig(data_dir=tmp_path / "old-box"))
    box.initialise(entropy, ADMIN_PASSWORD, **CHEAP_LIMITS)
    create_user(box, "admin", ADMIN_PASSWORD, "admin", hasher=CHEAP_HASHER)
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    archive.write(writes.store_record(message(key, "Bonjour Maître"), device_id, "maitre.durand"))
    drive = tmp_path / "usb"
    drive.mkdir()
    made = backup.run(archive, drive, derive_box_keys(entropy).backup_key)
    # Playwright's sync API runs a loop in this thread: stop the box on a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, box.stop()).result()
    return " ".join(entropy_to_words(entropy, "english")), drive, made.tree_size


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_restore_wizard_warns_before_and_the_dashboard_after(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    words, drive, tree_size = backed_up_box(tmp_path)
    with FreshBox(tmp_path / "new-box") as live:
        context = browser.new_context(
            locale=language, viewport={"width": PHONE_WIDTH, "height": 800}
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(live.url + "/")
        page.check(f"input[name=language][value={language}]")
        page.click("button[type=submit].primary")
        page.click("a[href='/setup/restore']")
        page.fill("#words", words)
        page.fill("#backup_dir", str(drive))
        page.click("button[type=submit].primary")

        # Before anything is restored: the backup's head and the warning.
        assert page.url.endswith("/setup/restore/passphrase")
        assert text["warning"] in page.inner_text("#restore-warning")
        assert page.get_attribute("#backup-summary", "data-tree-size") == str(tree_size)
        no_sideways_scroll(page)
        shot(page, language, "restore-warning")

        page.fill("#password", BOX_PASSPHRASE)
        page.fill("#password_again", BOX_PASSPHRASE)
        page.click("#start-restore")
        page.wait_for_selector("#job[data-state=done]", timeout=60_000)
        page.click("#restored-login")
        log_in(page, live.url, "admin", ADMIN_PASSWORD)
        page.goto(live.url + "/dashboard")
        notice = page.inner_text("#restore-notice")
        assert text["notice"] in notice
        assert page.get_attribute("#restore-notice", "data-tree-size") == str(tree_size)
        no_sideways_scroll(page)
        shot(page, language, "restore-dashboard-notice")

        page.click("#restore-notice form button")
        assert page.url.endswith("/dashboard")
        assert page.locator("#restore-notice").count() == 0
        context.close()
