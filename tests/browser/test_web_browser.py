"""The web UI in real Chromium (Debian's, never a downloaded one), in French and in English.

A real Box and its web app run on 127.0.0.1 (an ephemeral port) in a background
thread with its own event loop; Playwright drives the pages like a person:
wizard, pairing confirmation, login, accented search, record proof, export.
Screenshots of each main page go to tests/artifacts/ for a reviewer.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import zipfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveBox, pick, shot

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.office.verify_export import verify_bundle
from strongroom.pairing.gate import PairingAttempt, PairingMethod, PairingOutcome
from strongroom.pairing.service import PairingService
from web_helpers import ADMIN_PASSWORD


def _openssl_fingerprint(bundle: Path, where: Path) -> str:
    """What a court expert computes from the box.pem inside a downloaded export."""
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        pem = next(n for n in zf.namelist() if n.endswith("/box.pem"))
        (where / "box.pem").write_bytes(zf.read(pem))
    command = "openssl pkey -pubin -in box.pem -outform DER | sha256sum"
    done = subprocess.run(command, shell=True, cwd=where, capture_output=True, check=True)
    return done.stdout.decode().split()[0]


TEXT = {
    "fr": {
        "dashboard": "Tableau de bord",
        "verified": "vérifiée",
        "ready": "L'export est prêt.",
        "count": "3 messages seront exportés",
    },
    "en": {
        "dashboard": "Dashboard",
        "verified": "verified",
        "ready": "The export is ready.",
        "count": "3 messages will be exported",
    },
}

pytestmark = pytest.mark.browser


class FreshBox(LiveBox):
    """browser_support's LiveBox on a fresh data dir: the Box is made on the serving loop
    (the first-run wizard ahead), with a pairing service the test can drive."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(None)
        self.data_dir = data_dir
        self.pairing = PairingService(time.time)

    def submit(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def _start(self) -> None:
        self.box = Box(BoxConfig(data_dir=self.data_dir))
        self.box.pairing = self.pairing
        await super()._start()


def _seed_archive(box: Box) -> None:
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    for text, direction in (
        ("Réunion avec M. Martin mardi à 10 h au cabinet", "out"),
        ("Merci pour la réunion, je vous envoie le devis signé", "in"),
        ("Facture n° 2024-117 réglée", "in"),
    ):
        record = message(key, text, direction=direction, peer="M. Martin")
        archive.write(writes.store_record(record, device_id, "maitre.durand"))


@pytest.mark.parametrize("language", ["fr", "en"])
def test_office_manager_journey(browser: Any, tmp_path: Path, language: str) -> None:
    text = TEXT[language]
    with FreshBox(tmp_path / "data") as live:
        context = browser.new_context(locale=language, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(10_000)

        # -- first run: language, 24 words, confirmation, admin, practice ----------------
        page.goto(live.url + "/")
        assert page.url.endswith("/setup")
        page.check(f"input[name=language][value={language}]")
        shot(page, language, "01-setup-language")
        page.click("button[type=submit].primary")
        page.click("form[action='/setup/create'] button")
        words = page.locator("#words .w").all_inner_texts()
        assert len(words) == 24
        shot(page, language, "02-setup-words")
        page.click("a[href='/setup/confirm']")
        for field in page.locator("input[name^=word_]").all():
            position = int(field.get_attribute("name").split("_")[1])
            field.fill(words[position - 1])
        shot(page, language, "03-setup-confirm")
        page.click("button[type=submit].primary")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.fill("#password_again", ADMIN_PASSWORD)
        page.click("button[type=submit].primary")
        page.fill("#practice_name", "Cabinet Durand & Associés")
        page.click("button[type=submit].primary")
        shot(page, language, "04-setup-done")
        page.click("main a.button.primary[href='/devices']")

        # -- pairing: press, a phone asks, the admin compares the code and confirms --------
        page.click("#pair-button")
        page.wait_for_selector("#pairing-seconds")
        assert live.box is not None
        attempt = PairingAttempt(
            method=PairingMethod.BUTTON,
            noise_key=os.urandom(32),
            sign_key=os.urandom(32),
            device_name="Galaxy de Léa",
            owner="lea.martin",
            handshake_hash=os.urandom(32),
            comparison_code="482 915",
        )
        outcome: Future[PairingOutcome] = live.submit(live.pairing.request(attempt))
        # No reload by us: the page's script notices the pending phone by itself.
        page.wait_for_selector("#comparison-code")
        assert page.inner_text("#comparison-code") == "482 915"
        assert "Galaxy de Léa" in page.inner_text("#pairing")
        shot(page, language, "05-devices-pairing")
        page.click("#confirm-pairing")
        assert outcome.result(5).accepted

        # -- log out and in again ----------------------------------------------------------
        page.click("header form[action='/logout'] button")
        assert "/login" in page.url
        shot(page, language, "06-login")
        page.fill("#username", "admin")
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button[type=submit].primary")
        assert page.url.endswith("/dashboard")
        assert text["dashboard"] in page.inner_text("nav")

        # -- archive: accented search, record with its live-checked proof ----------------------
        _seed_archive(live.box)
        page.click("nav a[href='/archive']")
        page.fill("#q", "réunion")
        page.click("form.search button[type=submit]")
        assert page.locator(".hit").count() == 2
        shot(page, language, "07-archive-search")
        page.locator(".hit a").first.click()
        badge = page.locator("#proof-badge")
        assert "verified" in (badge.get_attribute("class") or "")
        assert text["verified"] in badge.inner_text()
        shot(page, language, "08-record-proof")

        # -- a sealed export, in the background, downloaded ----------------------------------
        page.click("nav a[href='/exports']")
        # No list of the archive's conversations: the lawyer types, picks, sees the count.
        assert page.locator("main select, main option").count() == 0
        pick(page, "#export-conversation", "m. mar", "maitre.durand ↔ M. Martin")
        assert page.is_checked("#export-kind-conversation")
        assert page.input_value("#export-conversation-id").isdigit()
        page.wait_for_selector("#export-count[data-count='3']")
        assert page.inner_text("#export-count").replace("\xa0", " ") == text["count"]
        page.fill("#recipient", "Tribunal judiciaire de Lyon")
        page.fill("#reason", "Demande du juge")
        page.click("#start-export")
        page.wait_for_selector("#download", timeout=20_000)
        assert text["ready"] in page.inner_text("main")
        shot(page, language, "09-export-done")
        with page.expect_download() as download_info:
            page.click("#download")
        assert download_info.value.suggested_filename.endswith(".zip")
        bundle = Path(download_info.value.path())

        # -- whose key: the Identity page shows what openssl computes from the bundle's key ---
        page.click("nav a[href='/identity']")
        shown = page.inner_text("[data-fingerprint='signing']").strip()
        assert shown == _openssl_fingerprint(bundle, tmp_path)
        assert shown in page.inner_text("footer")
        assert "-" in page.inner_text("[data-fingerprint='protocol']")  # the phones' own
        shot(page, language, "09b-identity")

        # -- the dashboard and the audit trail ------------------------------------------------
        page.click("nav a[href='/dashboard']")
        shot(page, language, "10-dashboard")
        page.click("nav a[href='/audit']")
        audit = page.inner_text("main")
        for action in (
            "setup.identity",
            "pairing.confirm",
            "archive.search",
            "archive.view",
            "export",
        ):
            assert action in audit
        shot(page, language, "11-audit")

        # -- the downloaded export, checked byte for byte ---------------------------------------
        # The bytes the browser saved are this box's sealed export of the conversation.
        saved = tmp_path / "downloaded.zip"
        download_info.value.save_as(saved)
        report = verify_bundle(saved)
        assert report.ok, report.problems
        assert (report.kind, report.records) == ("export", 3)
        with zipfile.ZipFile(saved) as zf:
            index_name = next(n for n in zf.namelist() if n.endswith("/export.json"))
            index = json.loads(zf.read(index_name))
        assert index["recipient"] == "Tribunal judiciaire de Lyon"
        assert index["reason"] == "Demande du juge"
        assert (
            index["box_public_key"]
            == live.box.require_archive().signing_key.verify_key.encode().hex()
        )
        context.close()
