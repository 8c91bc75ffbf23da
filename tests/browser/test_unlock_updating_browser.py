"""After an upgrade, in real Chromium: the admin unlocks, the page says the archive is
being updated, and it leads to the login by itself once the migration is done.

The box runs in this process (a BoxRuntime on its own loop, in a thread) so that
the real migration's SQL can be slowed at the SQLite edge, as in
tests/test_unlock_migration.py (whose helpers this uses)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import pytest
from browser_support import no_sideways_scroll, shot
from gpiozero.pins.mock import MockFactory, MockPWMPin

from strongroom.config import BoxConfig
from strongroom.runtime import BoxRuntime
from test_unlock_migration import PREVIOUS, SlowMigration, box_at_previous_schema, on_disk_schema
from web_helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

UPDATING = {"fr": "Mise à jour de l'archive…", "en": "Updating the archive…"}


class BoxInThread:
    """A started BoxRuntime on an event loop of its own (Playwright's sync API needs this
    thread free of any loop)."""

    def __init__(self, config: BoxConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runtime = BoxRuntime(config, pin_factory=MockFactory(pin_class=MockPWMPin))
        asyncio.run_coroutine_threadsafe(self.runtime.start(), self.loop).result(60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runtime.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_unlock_page_says_the_archive_is_updating_then_leads_to_the_login(
    browser: Any, tmp_path: Path, language: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Playwright's sync API keeps a loop running on this thread: build it on another.
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        config = worker.submit(asyncio.run, box_at_previous_schema(tmp_path)).result(60)
    slow = SlowMigration()
    slow.install(monkeypatch)
    box = BoxInThread(config)
    try:
        context = browser.new_context(locale=language, viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(box.url + "/")
        assert page.url.endswith("/unlock")
        page.fill("#passphrase", ADMIN_PASSWORD)
        page.click("form[action='/unlock'] button[type=submit]")
        # The answer comes at once, while the migration goes on behind it.
        assert page.inner_text("#updating") == UPDATING[language]
        assert f"{PREVIOUS}" in page.inner_text("main")
        assert page.locator("#passphrase").count() == 0  # no second unlock to type
        no_sideways_scroll(page)
        shot(page, language, "unlock-updating-390")
        assert page.url.endswith("/unlock")
        slow.released.set()
        # Nobody clicks anything: the page refreshes itself into the login.
        page.wait_for_url("**/login")
        context.close()
    finally:
        slow.released.set()
        box.stop()
    assert on_disk_schema(config) == PREVIOUS + 1
