"""Shared by the browser tests: Debian's Chromium, screenshots, the wizard walk, width checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest

from web_helpers import ADMIN_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PHONE_WIDTH = 390


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, for a module's `browser` fixture; a missing
    binary fails the test (never a skip counted as a pass)."""
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is missing at /usr/bin/chromium: `make test` installs it "
            "(apt-get install chromium) when run as root.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def pick(page: Any, field: str, typed: str, label: str) -> None:
    """In a records-office picker (`field`, a CSS id): type the first letters as a
    person does, one key at a time, then click `label` in the list the box answers."""
    page.fill(field, "")
    page.type(field, typed, delay=40)
    page.locator(f"{field}-list [role=option]", has_text=label).first.click()


def shot(page: Any, language: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{language}-{name}.png"), full_page=True)


def walk_wizard(page: Any, url: str, language: str, admin: str, password: str) -> list[str]:
    """Create a box in the first-run wizard as a person would; return the 24 words."""
    page.goto(url + "/")
    assert page.url.endswith("/setup")
    page.check(f"input[name=language][value={language}]")
    page.click("button[type=submit].primary")
    page.click("form[action='/setup/create'] button")
    words: list[str] = page.locator("#words .w").all_inner_texts()
    assert len(words) == 24
    page.click("a[href='/setup/confirm']")
    for field in page.locator("input[name^=word_]").all():
        position = int(field.get_attribute("name").split("_")[1])
        field.fill(words[position - 1])
    page.click("button[type=submit].primary")
    page.fill("#username", admin)
    page.fill("#password", password)
    page.fill("#password_again", password)
    page.click("button[type=submit].primary")
    assert page.locator("header nav").count() == 0  # no menu until the wizard ends
    page.fill("#practice_name", "Cabinet Durand & Associés")
    page.click("button[type=submit].primary")
    assert page.url.endswith("/setup/done")
    assert page.locator("header nav").count() == 1
    return words


def log_in(page: Any, url: str, username: str, password: str) -> str:
    """Log in on the login page; return what the page then shows in <main>."""
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit].primary")
    return str(page.inner_text("main"))


def admin_page(
    browser: Any,
    url: str,
    language: str,
    *,
    width: int = 1280,
    height: int = 1000,
    downloads: bool = False,
) -> tuple[Any, Any]:
    """A new browser context (`language`, a `width` x `height` window) and its page,
    with the tests' 15 s timeout, logged in as the test boxes' admin."""
    context = browser.new_context(
        locale=language, viewport={"width": width, "height": height}, accept_downloads=downloads
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, url, "admin", ADMIN_PASSWORD)
    return context, page


def no_sideways_scroll(page: Any) -> None:
    """The page fits the viewport's width (nothing to scroll sideways on a phone)."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth, location.pathname]"
    )
    assert widths[0] <= widths[1], f"{widths[2]} is {widths[0]} px wide in {widths[1]} px"


class LiveBox:
    """A prepared Box and its web UI on 127.0.0.1 (ephemeral port), on a background loop."""

    def __init__(self, box: Any, **app_options: Any) -> None:
        import asyncio
        import threading

        self.box = box
        self.app_options = app_options
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: Any = None
        self.port = 0

    def __enter__(self) -> Self:
        self.thread.start()
        self.call(self._start())
        return self

    def __exit__(self, *_exc: object) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        from aiohttp import web

        from web_helpers import web_app

        self.runner = web.AppRunner(web_app(self.box, **self.app_options))
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.box.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
