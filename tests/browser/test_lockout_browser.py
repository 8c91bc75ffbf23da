"""Lockout per account and address, in real Chromium against a real `strongroom dev`
process: one person's mistakes lock only their account; a restart keeps both the lockout
and the colleague's logged-in session."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from browser_support import PHONE_WIDTH, log_in, no_sideways_scroll, shot

from devbox_process import DevBoxProcess, free_port
from strongroom.devbox import prepare_dev_box

pytestmark = pytest.mark.browser

BRUNO = "Bruno archive tout 2"
TEXT = {
    "fr": {
        "minutes": "réessayez dans 1\u00a0minute",
        "wrong": "Nom d'utilisateur ou phrase secrète",
    },
    "en": {"minutes": "try again in 1 minute", "wrong": "Wrong username or passphrase"},
}


@pytest.mark.parametrize("language", ["fr", "en"])
def test_one_persons_mistakes_lock_only_them_even_after_a_restart(
    browser: Any, tmp_path: Path, language: str
) -> None:
    text = TEXT[language]
    data = tmp_path / "dev"
    # In a thread: Playwright's sync API already runs an event loop on this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(prepare_dev_box, data).result(60)
    admin_password = (data / "admin-passphrase.txt").read_text().strip()
    secret = tmp_path / "bruno.txt"
    secret.write_text(BRUNO + "\n")
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "strongroom",
            "user-add",
            "bruno",
            "--role",
            "archivist",
            "--new-passphrase-file",
            str(secret),
            "--data",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    port = free_port()
    viewport = {"width": PHONE_WIDTH, "height": 844}
    claire = browser.new_context(locale=language, viewport=viewport)
    bruno = browser.new_context(locale=language, viewport=viewport)
    mistyper, colleague = claire.new_page(), bruno.new_page()
    first = DevBoxProcess(data, "--port", str(port))
    try:
        url = first.wait_url()
        for _ in range(4):
            assert text["wrong"] in log_in(mistyper, url, "admin", "pas la bonne phrase")
        fifth = log_in(mistyper, url, "admin", "pas la bonne phrase")
        assert text["minutes"] in fifth
        assert text["minutes"] in log_in(mistyper, url, "admin", admin_password)
        no_sideways_scroll(mistyper)
        shot(mistyper, language, "lockout-01-locked-390")
        log_in(colleague, url, "bruno", BRUNO)  # same address, another account
        assert colleague.url.endswith("/archive")
    finally:
        assert first.stop() == 0

    second = DevBoxProcess(data, "--port", str(port))
    try:
        url = second.wait_url()
        colleague.goto(url + "/archive")
        assert colleague.url.endswith("/archive")  # still logged in after the restart
        assert text["minutes"] in log_in(mistyper, url, "admin", admin_password)
    finally:
        assert second.stop() == 0
    claire.close()
    bruno.close()
