"""The records office in real Chromium, on a real running box with two real phones.

Two phones push 2015 conversations; the office manager opens a matter, creates
a policy and assigns policies, holds dr.martin, runs retention (dr.martin's
conversations survive, M. Petit's goes), reads on a record page which policy
applies and why, lifts the hold, approves the due queue, downloads the
certificate and checks it with openssl alone in a clean directory. Then
`strongroom verify` passes and the destroyed texts are nowhere.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, pick, shot

from archive_helpers import COUNT_BY_TEXT, MESSAGES_JOIN
from e2e_helpers import Clock, E2EBox, prepare_data_dir, start_box
from records_office_helpers import (
    HELD_TEXTS,
    PETIT_TEXT,
    strongroom,
    texts_in_archive,
    texts_left_on_disk,
    two_phones_push_the_past,
    verify_certificate_with_openssl,
)
from strongroom.archive.schema import MESSAGE_TEXT
from web_helpers import ADMIN_PASSWORD

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "protects": "3\u00a0conversations, 4\u00a0enregistrements",
        "why": "attribuée à son dossier",
    },
    "en": {"protects": "3 conversations, 4 records", "why": "assigned to its matter"},
}


class RunningBox:
    """A BoxRuntime (web, /peer, control socket) on its own event loop in a thread."""

    def __init__(
        self, data_dir: Path, before_start: Callable[[Path], Awaitable[None]] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.before_start = before_start  # run on the prepared data dir, nothing running
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.running: E2EBox | None = None

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> RunningBox:
        self.thread.start()

        async def start() -> E2EBox:
            config = await prepare_data_dir(self.data_dir)
            if self.before_start is not None:
                await self.before_start(config.data_dir)
            running = await start_box(config, clock=Clock())
            await two_phones_push_the_past(running)
            return running

        self.running = self.call(start())
        return self

    def stop(self) -> None:
        if self.running is not None:
            self.call(self.running.stop())
            self.running = None

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def box(self) -> E2EBox:
        assert self.running is not None
        return self.running


def _finish_job(page: Any) -> None:
    page.wait_for_selector("#job[data-state=done]", timeout=60_000)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_records_office_journey_in_chromium(browser: Any, tmp_path: Path, language: str) -> None:
    text = TEXT[language]
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    with RunningBox(tmp_path / "box") as live:
        running = live.box
        context, page = admin_page(browser, running.url, language, downloads=True)

        # -- a matter with dr.martin in it, closed in January 2016 -----------------------------
        page.goto(running.url + "/office/matters")
        page.fill("#matter-ref", "D-2015-007")
        page.fill("#matter-client", "Dr Martin")
        page.fill("#matter-resp", "Maître Durand")
        page.click("#new-matter button[type=submit]")
        page.click("#matters details summary")
        page.fill("#attach-person-1", "dr.martin")
        page.click("#matters button[name=action][value=attach]")
        page.click("#matters details summary")
        pick(page, "#attach-conv-1", "dr", "dr.martin ↔ maitre.durand")
        page.click("#matters button[name=action][value=attach]")
        page.click("#matters details summary")
        page.fill("#closed-1", "2016-01-31")
        page.click("form:has(#closed-1) button[type=submit]")
        assert "2016" in page.inner_text("#matters")
        shot(page, language, "office-01-matters")

        # -- a new policy, and who it governs ---------------------------------------------------
        page.goto(running.url + "/office")
        page.click("details:has(#new-policy) summary")
        page.fill("#new-name", "Courrier ordinaire")
        page.fill("#new-duration", "3")
        page.select_option("#new-unit", "years")
        page.select_option("#new-start", "record_date")
        page.select_option("#new-action", "destroy")
        page.click("#new-policy button[type=submit]")
        assert "Courrier ordinaire" in page.inner_text("#policies")
        page.select_option("#assign-scope", "matter")
        pick(page, "#assign-matter", "D-20", "D-2015-007 Dr Martin")
        page.select_option("#assign-policy", label="Dossier d'avocat")
        page.click("#assign button[type=submit]")
        page.select_option("#assign-scope", "contact")
        page.fill("#assign-person", "M. Petit")
        page.select_option("#assign-policy", label="Courrier ordinaire")
        page.click("#assign button[type=submit]")
        assert "M. Petit" in page.inner_text("#assignments")

        # -- hold dr.martin: all three of his conversations -------------------------------------
        page.select_option("#hold-scope", "person")
        page.fill("#hold-person", "Dr Martin")
        page.fill("#hold-case", "Ordre c/ Martin")
        page.fill("#hold-reason", "Plainte ordinale")
        page.click("#new-hold button[type=submit]")
        assert text["protects"] in page.inner_text("#holds .reach")
        shot(page, language, "office-02-policies-holds")

        # -- the record page says which policy applies and why --------------------------------
        (row,) = running.query(
            f"SELECT m.record_id FROM {MESSAGES_JOIN} WHERE {MESSAGE_TEXT} = ?", HELD_TEXTS[0]
        )
        page.goto(f"{running.url}/archive/records/{row[0]}")
        assert "Dossier d'avocat" in page.inner_text("#retention-policy")
        assert text["why"] in page.inner_text("#retention-why")
        assert "D-2015-007" in page.inner_text("#retention-why")

        # -- retention runs: the held survive, M. Petit's letter goes -------------------------
        page.goto(running.url + "/office/due")
        page.click("#run-retention button")
        _finish_job(page)
        assert running.count(COUNT_BY_TEXT + " = ?", PETIT_TEXT) == 0
        assert running.count("SELECT count(*) FROM messages") == 4
        page.goto(running.url + "/office/due")
        assert page.locator("tr[data-state=held]").count() == 4
        assert "Ordre c/ Martin" in page.inner_text("#due-form")

        # -- lift the hold, approve in the due queue, download the certificate -----------------
        page.goto(running.url + "/office")
        page.fill("#holds input[name=reason]", "Plainte classée")
        page.click("#holds form button[type=submit]")
        page.goto(running.url + "/office/due")
        assert page.locator("tr[data-state=review]").count() == 4
        page.fill("#due-reason", "Délai de cinq ans écoulé")
        shot(page, language, "office-03-due")
        page.click("#decide")
        _finish_job(page)
        with page.expect_download() as download_info:
            page.click("#download")
        bundle = tmp_path / "certificate.zip"
        download_info.value.save_as(str(bundle))
        document = verify_certificate_with_openssl(bundle, tmp_path / "clean")
        assert document["count"] == 4 and document["approver"] == "admin"
        assert {r["assignment"] for r in document["records"]} == {"matter:1"}
        page.goto(running.url + "/office/certificates")
        assert page.locator("#certificates tbody tr").count() == 2
        shot(page, language, "office-04-certificates")
        actions = running.audit_actions()
        for action in ("matter.create", "retention.policy.create", "hold.place", "hold.lift"):
            assert action in actions
        assert "retention.approve" in actions and "destruction" in actions
        assert texts_in_archive(running, (*HELD_TEXTS, PETIT_TEXT), "zqxw") == []
        context.close()
        live.stop()
    assert "OK: the archive verifies" in strongroom(
        tmp_path / "box", "verify", passphrase_file=secret
    )
    assert texts_left_on_disk(tmp_path / "box", (*HELD_TEXTS, PETIT_TEXT)) == []
