"""The Integrity page in real Chromium (fr, en): what was verified when, after the
nightly timer's own command ran against the running box; then a record pushed after
the last verified head is tampered with, the next nightly (incremental) run catches
it, and the page, the dashboard and the panel say it failed."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from browser_support import admin_page, no_sideways_scroll, shot
from test_records_office_browser import RunningBox

from e2e_helpers import E2EBox, message, pair_by_qr
from records_office_helpers import run_strongroom
from strongroom.archive import db
from strongroom.archive.verify_runs import Verification, latest

pytestmark = pytest.mark.browser

TEXT = {
    "fr": {
        "nav": "Intégrité",
        "passed": "réussi",
        "by_full": "par une vérification complète",
        "failed": "Le dernier contrôle d’intégrité a ÉCHOUÉ",
        "night": "1/30 de ce qu’il reste à relire du balayage en cours,"
        " au plus 30\u202f000 entrées",
        "scheduled": "planification nocturne",
        "manual": "vérification à la demande",
    },
    "en": {
        "nav": "Integrity",
        "passed": "passed",
        "by_full": "by a full verify",
        "failed": "The latest integrity check FAILED",
        "night": "1/30 of what the current sweep has left, at most 30,000 log entries",
        "scheduled": "nightly schedule",
        "manual": "check now",
    },
}


async def a_day_of_messages(running: E2EBox, count: int, word: str) -> None:
    phone, _ = await pair_by_qr(running, f"Pixel {word}", "maitre.durand")
    try:
        for i in range(count):
            await phone.push(message(f"{word} {i}", conv="c-jour", sender="Me", n=100 + i))
    finally:
        await phone.close()


def nightly(data_dir: Path) -> Any:
    """The verify timer's command (systemd/strongroom-verify.service) on the running box."""
    return run_strongroom(data_dir, "verify", "--scheduled")


def newest_run(running: E2EBox) -> Verification:
    with closing(running.box.require_archive().reader()) as conn:
        run = latest(conn)
    assert run is not None
    return run


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_integrity_page_says_what_was_verified_when_and_shows_a_failure(
    browser: Any,
    tmp_path: Path,
    language: str,
) -> None:
    text = TEXT[language]
    with RunningBox(tmp_path / "box") as live:
        running = live.box
        data_dir = running.runtime.config.data_dir
        first = nightly(data_dir)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "full verify" in first.stdout  # nothing verified yet: the first run is full
        full = newest_run(running)
        live.call(a_day_of_messages(running, 6, "lundi"))
        second = nightly(data_dir)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "incremental" in second.stdout
        incremental = newest_run(running)
        assert incremental.kind == "incremental" and incremental.from_size == full.tree_size

        context, page = admin_page(browser, running.url, language)
        page.click("nav a[href='/integrity']")
        assert text["nav"] in page.inner_text("h1")
        # What a night checks, with the bound on the older log it re-reads.
        assert text["night"] in page.inner_text("p.hint >> nth=0")
        last_full = page.locator("#last-full")
        assert last_full.locator("[data-result=ok]").inner_text() == text["passed"]
        assert last_full.locator("[data-records]").inner_text() == str(full.records)
        last_incremental = page.locator("#last-incremental")
        assert last_incremental.locator("[data-result=ok]").inner_text() == text["passed"]
        new_entries = incremental.tree_size - incremental.from_size
        assert last_incremental.locator("[data-new]").inner_text() == str(new_entries)
        assert last_incremental.locator("[data-records]").inner_text() == str(incremental.records)
        sample = f"{incremental.sample_from}–{incremental.sample_to}"
        assert last_incremental.locator("[data-sample]").inner_text() == sample
        assert text["by_full"] in page.inner_text("#whole-coverage")
        assert page.locator("#verify-runs tbody tr").count() == 2
        assert page.locator("#integrity-failure").count() == 0
        shot(page, language, "integrity-01-passed")
        # An admin checks now from the page: the run is kept like the timer's.
        page.click("form:has(input[name=mode][value=incremental]) button")
        page.wait_for_selector("#job[data-state=done]", timeout=60_000)
        page.goto(running.url + "/integrity")
        assert page.locator("#verify-runs tbody tr").count() == 3
        newest = page.locator("#verify-runs tbody tr").first
        assert newest.get_attribute("data-kind") == "incremental"
        assert newest.get_attribute("data-ok") == "true"
        assert newest_run(running).from_size == incremental.tree_size
        # Why each run was made: the admin's check now, then the timer's two nights.
        purposes = page.locator("#verify-runs tbody tr")
        assert [purposes.nth(n).get_attribute("data-purpose") for n in range(3)] == [
            "manual",
            "scheduled",
            "scheduled",
        ]
        assert text["manual"] in purposes.nth(0).inner_text()
        assert text["scheduled"] in purposes.nth(1).inner_text()

        # -- someone with the key changes a message pushed after the last verified head -------
        live.call(a_day_of_messages(running, 3, "mardi"))
        keys = running.box.keys
        assert keys is not None
        with closing(db.connect(data_dir / "archive.db", keys.archive_key)) as conn:
            changed = conn.execute(
                "UPDATE messages SET text = 'falsifié' WHERE record_id ="
                " (SELECT max(id) FROM records)"
            ).rowcount
        assert changed == 1
        failed = nightly(data_dir)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "verify failed: incremental verify" in failed.stderr, failed.stderr
        assert "its message row differs from the signed record" in failed.stderr

        page.goto(running.url + "/integrity")
        alert = page.inner_text("#integrity-failure")
        assert text["failed"] in alert
        assert "its message row differs from the signed record" in alert
        newest = page.locator("#verify-runs tbody tr").first
        assert newest.get_attribute("data-kind") == "incremental"
        assert newest.get_attribute("data-ok") == "false"
        assert page.locator("#last-incremental [data-result=failed]").count() == 1
        shot(page, language, "integrity-02-failed")
        page.set_viewport_size({"width": 390, "height": 900})
        no_sideways_scroll(page)

        page.goto(running.url + "/dashboard")
        verify_row = page.locator("#night-jobs tr[data-job=verify]")
        assert verify_row.get_attribute("data-outcome") == "failed"
        # The panel: JOB_FAILED for the night job, INTEGRITY_FAILURE for the archive.
        assert running.runtime.night_jobs.failed
        assert running.runtime.integrity_ok is False
        # The audit trail: the failed check and the failed night job.
        with closing(running.box.require_archive().reader()) as conn:
            actions = {
                (str(a), str(t)) for a, t in conn.execute("SELECT action, target FROM audit_events")
            }
        assert {("integrity.failed", "archive"), ("nightjob.failed", "verify")} <= actions
        context.close()
