"""The /reach page in real Chromium (FR and EN): reach turned on after a phone was
paired, the page says which phone must still connect once on the office network,
the phone does, the page counts it; then the address changes and the same again.

The box is a whole BoxRuntime on its own loop in a thread, with the loopback
stand-in for tor of reach_support (a real helper app writing real files).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE_WIDTH, admin_page, log_in, shot

from e2e_helpers import E2EBox, pair_by_qr
from reach_support import box_with_reach_stand_in
from strongroom.client import DeviceState, PhoneClient
from strongroom.reach.tor_files import TorFiles
from web_helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "before": "inutile de les appairer de nouveau",
        "rotated": "chaque téléphone l’apprend à sa prochaine connexion",
    },
    "en": {
        "before": "no need to pair them again",
        "rotated": "each phone learns it the next time it connects",
    },
}


class ReachBox:
    """The running box and its helper on a loop of their own (Playwright owns this one)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> tuple[ReachBox, E2EBox, TorFiles]:
        self.thread.start()

        async def start() -> tuple[E2EBox, TorFiles]:
            return await self._stack.enter_async_context(box_with_reach_stand_in(self.tmp_path))

        box, files = self.call(start())
        return self, box, files

    def __exit__(self, *_exc: object) -> None:
        self.call(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def connect_on_the_lan(box: E2EBox, state: DeviceState) -> None:
    phone = PhoneClient(state, keepalive=False)
    await phone.connect(box.peer_url)
    await phone.close()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_reach_page_counts_the_phones_that_must_connect_once(
    browser: Any, tmp_path: Path, language: str
) -> None:
    with ReachBox(tmp_path) as (live, box, files):
        phone, _ = live.call(pair_by_qr(box, "Pixel de Claire", "claire"))
        live.call(phone.close())
        state = phone.state
        assert state.onion is None  # paired while reach was off

        context, page = admin_page(browser, box.url, language, height=900)
        page.goto(box.url + "/reach")
        assert TEXT[language]["before"] in page.inner_text("main")
        page.click("#reach-on")
        assert page.inner_text("#reach-state") in ("on", "activé", "activée")
        assert page.inner_text("#reach-waiting") == "1"
        assert page.inner_text("#reach-current") == "0"
        assert "Pixel de Claire · claire" in page.inner_text("#reach-waiting-phones")
        shot(page, language, "reach-01-waiting")

        live.call(connect_on_the_lan(box, state))
        assert state.onion == files.onion() and state.onion_auth is not None
        page.reload()
        assert page.inner_text("#reach-current") == "1"
        assert page.inner_text("#reach-waiting") == "0"
        assert page.locator("#reach-waiting-phones").count() == 0

        first = files.onion()
        page.click("#reach-rotate")
        assert TEXT[language]["rotated"] in page.inner_text(".flash-success")
        assert page.inner_text("#reach-onion") == files.onion() != first
        assert page.inner_text("#reach-waiting") == "1"
        shot(page, language, "reach-02-rotated")
        live.call(connect_on_the_lan(box, state))
        assert state.onion == files.onion()
        page.reload()
        assert page.inner_text("#reach-current") == "1"
        assert page.inner_text("#reach-waiting") == "0"
        context.close()

        # On a phone's screen too, nothing scrolls sideways (the onion address wraps).
        narrow = browser.new_context(
            locale=language, viewport={"width": PHONE_WIDTH, "height": 900}
        )
        page = narrow.new_page()
        log_in(page, box.url, "admin", ADMIN_PASSWORD)
        page.goto(box.url + "/reach")
        scroll, inner = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        shot(page, language, "reach-03-390")
        narrow.close()
        assert scroll <= inner, f"/reach scrolls sideways at {PHONE_WIDTH} px: {scroll} px"
