"""The everyday pages over HTTP: archive search and proof, devices and pairing, jobs, audit."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import audit_events
from strongroom.archive.listings import list_devices
from strongroom.box import Box
from strongroom.integrity import IntegrityStatus
from strongroom.office.holds import list_holds
from strongroom.office.verify_export import verify_bundle
from strongroom.pairing.gate import PairingAttempt, PairingMethod
from strongroom.pairing.service import PairingService
from strongroom.web.state import STATE
from support.clock import Clock
from support.wait import until
from web_helpers import (
    ADMIN_PASSWORD,
    ARCHIVIST_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    csrf_of,
    login,
    new_box,
    web_app,
)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    for text, direction in (
        ("Réunion avec le client mardi à 10 h", "out"),
        ("Merci pour la réunion, voici le devis", "in"),
        ("Facture réglée", "in"),
    ):
        archive.write(
            writes.store_record(message(key, text, direction=direction), device_id, "maitre.durand")
        )
    yield box
    await box.stop()


@pytest.fixture
async def client(box: Box, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})


def _events(box: Box, action: str) -> list[object]:
    conn = box.require_archive().reader()
    try:
        return list(audit_events(conn, action=action))
    finally:
        conn.close()


def _active_holds(box: Box) -> list[int]:
    conn = box.require_archive().reader()
    try:
        return [h.id for h in list_holds(conn, active_only=True)]
    finally:
        conn.close()


async def test_search_folds_french_accents_and_is_audited(client: Client, box: Box) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    html = await (await client.get("/archive", params={"q": "REUNION"})).text()
    assert html.count('class="hit"') == 2
    assert "Facture" not in html
    html = await (await client.get("/archive", params={"q": "réunion", "direction": "in"})).text()
    assert html.count('class="hit"') == 1 and "devis" in html
    searches = _events(box, "archive.search")
    assert [e.target for e in searches] == ["réunion", "REUNION"]  # type: ignore[attr-defined]
    assert all(e.actor == "archiviste" for e in searches)  # type: ignore[attr-defined]


async def test_search_filters_by_date_and_attachment(client: Client) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    html = await (await client.get("/archive", params={"since": "2100-01-01"})).text()
    assert html.count('class="hit"') == 0
    html = await (await client.get("/archive", params={"attachment": "no"})).text()
    assert html.count('class="hit"') == 3


async def test_conversations_listed_by_person_and_device(client: Client) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    html = await (await client.get("/archive")).text()
    assert "maitre.durand" in html and "Pixel de Maître Durand" in html
    # French typography may put a no-break space before the unit: read it as a space.
    assert "3 messages" in re.sub("[\xa0\u202f]", " ", html)


async def test_search_results_warn_after_a_failed_integrity_check(client: Client, box: Box) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    html = await (await client.get("/archive", params={"q": "facture"})).text()
    assert 'id="integrity-warning"' not in html
    box.integrity = IntegrityStatus(
        checked_at=1_800_000_000.0,
        ok=False,
        problems=("leaf 2: the record does not match its log entry",),
        problem_count=1,
        leaves=3,
        duration_s=0.1,
    )
    html = await (await client.get("/archive", params={"q": "facture"})).text()
    assert 'id="integrity-warning"' in html and "may have been tampered with" in html
    assert html.count('class="hit"') == 1  # the results are still shown, under the warning
    client.session.cookie_jar.update_cookies({"lang": "fr"})
    html = await (await client.get("/archive")).text()
    assert 'id="integrity-warning"' in html and "a pu être altéré" in html
    box.integrity = replace(box.integrity, ok=True, problems=(), problem_count=0)
    html = await (await client.get("/archive")).text()
    assert 'id="integrity-warning"' not in html


async def test_record_page_checks_the_proof_live(client: Client, box: Box) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    html = await (await client.get("/archive/records/1")).text()
    assert 'id="proof-badge"' in html and "verified" in html and "not verified" not in html
    assert "Réunion avec le client" in html
    assert [e.target for e in _events(box, "archive.view")] == ["1"]  # type: ignore[attr-defined]

    # Someone edits the stored message bytes behind the box's back: the page says so.
    archive = box.require_archive()
    archive.conn.execute("UPDATE records SET body = ? WHERE id = 1", (os.urandom(40),))
    html = await (await client.get("/archive/records/1")).text()
    assert "not verified" in html


async def test_record_page_detects_a_forged_tree_head(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    # After the login (whose audit event signed a new head), forge every stored head.
    box.require_archive().conn.execute("UPDATE tree_heads SET signature = ?", (bytes(64),))
    html = await (await client.get("/archive/records/2")).text()
    assert "not verified" in html


async def test_unknown_record_is_404(client: Client) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    assert (await client.get("/archive/records/999")).status == 404


async def test_rename_and_revoke_a_device_are_audited(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    page = await (await client.get("/devices")).text()
    token = csrf_of(page)
    await client.post(
        "/devices/1/rename", data={"name": "iPhone de l'accueil", "csrf_token": token}
    )
    confirm = await (await client.get("/devices/1/revoke")).text()
    assert "iPhone de l&#39;accueil" in confirm
    await client.post("/devices/1/revoke", data={"csrf_token": token})
    conn = box.require_archive().reader()
    device = list_devices(conn)[0]
    conn.close()
    assert device.name == "iPhone de l'accueil" and device.revoked_at is not None
    assert len(_events(box, "device.rename")) == 1
    assert len(_events(box, "device.revoke")) == 1


async def test_pairing_confirmation_through_the_ui(box: Box, aiohttp_client: AiohttpClient) -> None:
    pairing = box.pairing = PairingService(Clock(1_800_000_000.0))
    client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/devices")).text())
    await client.post("/devices/pair", data={"csrf_token": token})
    status = await (await client.get("/devices/pairing.json")).json()
    assert status["open"] is True and status["seconds_left"] == 120

    attempt = PairingAttempt(
        method=PairingMethod.BUTTON,
        noise_key=os.urandom(32),
        sign_key=os.urandom(32),
        device_name="<b>Galaxy</b> de Léa",
        owner="lea.martin",
        handshake_hash=os.urandom(32),
        comparison_code="482 915",
    )
    waiting = asyncio.ensure_future(pairing.request(attempt))
    await until(lambda: pairing.status().pending is not None, what="the phone to be pending")
    page = await (await client.get("/devices")).text()
    assert "482 915" in page and "&lt;b&gt;Galaxy&lt;/b&gt; de Léa" in page
    ticket = re.search(r'name="ticket" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    await client.post("/devices/pair/confirm", data={"ticket": ticket, "csrf_token": token})
    outcome = await asyncio.wait_for(waiting, 2)
    assert outcome.accepted
    assert [e.target for e in _events(box, "pairing.confirm")] == ["<b>Galaxy</b> de Léa"]  # type: ignore[attr-defined]
    # A stale page cannot confirm anything later.
    response = await client.post(
        "/devices/pair/confirm", data={"ticket": ticket, "csrf_token": token}
    )
    assert "no longer pending" in await response.text()


async def test_pair_with_qr_shows_an_inline_svg(box: Box, aiohttp_client: AiohttpClient) -> None:
    box.pairing = PairingService(Clock(1_800_000_000.0))
    client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/devices/qr")).text())
    html = await (await client.post("/devices/qr", data={"csrf_token": token})).text()
    assert "<svg" in html and "<path" in html
    assert len(_events(box, "pairing.qr")) == 1


async def test_pages_without_a_pairing_service_say_so(
    client: Client, box: Box, aiohttp_client: AiohttpClient
) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    html = await (await client.get("/devices")).text()
    assert "Pairing is not available" in html
    assert "appairage" not in html  # the English page, not the French one
    french = await aiohttp_client(client.app, headers={"Accept-Language": "fr"})
    await login(french, "admin", ADMIN_PASSWORD)
    html = await (await french.get("/devices")).text()
    assert "L&#39;appairage n&#39;est pas disponible" in html
    assert "Pairing is not available" not in html


async def test_integrity_check_runs_as_a_background_job(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/dashboard")).text())
    response = await client.post("/verify", data={"csrf_token": token}, allow_redirects=False)
    job_path = response.headers["Location"]
    job_id = job_path.rsplit("/", 1)[1]
    await client.app[STATE].jobs.wait(job_id)
    status = await (await client.get(f"{job_path}/status")).json()
    assert status == {**status, "state": "done", "percent": 100}
    html = await (await client.get(job_path, headers={"Accept-Language": "en"})).text()
    assert "The archive verifies." in html
    events = _events(box, "integrity.verify")
    assert len(events) == 1 and '"ok": true' in events[0].details  # type: ignore[attr-defined]
    dashboard = await (await client.get("/dashboard", headers={"Accept-Language": "en"})).text()
    assert "passed" in dashboard


async def test_someone_elses_job_is_not_visible(
    client: Client, box: Box, aiohttp_client: AiohttpClient
) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/dashboard")).text())
    job_path = (
        await client.post("/verify", data={"csrf_token": token}, allow_redirects=False)
    ).headers["Location"]
    archivist = await aiohttp_client(client.app, headers={"Accept-Language": "en"})
    await login(archivist, "archiviste", ARCHIVIST_PASSWORD)
    assert (await archivist.get(job_path)).status == 404


async def test_audit_trail_filters(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    await client.get("/archive", params={"q": "facture"})
    auditor = client
    await login(auditor, "auditeur", AUDITOR_PASSWORD)
    html = await (await auditor.get("/audit", params={"action": "archive.search"})).text()
    # One row: the action by its name, its code beside it for the auditor.
    assert html.count('Archive searched <code class="muted small">archive.search</code>') == 1
    html = await (await auditor.get("/audit", params={"actor": "nobody"})).text()
    # The audit page itself, saying it found nothing (not some other page without rows).
    assert 'value="nobody"' in html and "No event." in html
    assert "archive.search</code>" not in html


async def test_users_page_creates_accounts(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/users")).text())
    form = {"username": "Secretariat", "password": "Secret du cabinet 9", "role": "archivist"}
    await client.post("/users", data={**form, "csrf_token": token})
    duplicate = await client.post("/users", data={**form, "csrf_token": token})
    assert duplicate.status == 409
    assert [e.target for e in _events(box, "user.create")] == ["secretariat"]  # type: ignore[attr-defined]


async def test_office_page_places_and_lifts_a_hold(client: Client, box: Box) -> None:
    from strongroom.office.migrations import ensure_office_schema

    ensure_office_schema(box.require_archive().conn)
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    token = csrf_of(await (await client.get("/office")).text())
    await client.post(
        "/office/holds",
        data={
            "scope": "conversation",
            "conversation": "1",
            "reason": "Contentieux Martin",
            "csrf_token": token,
        },
    )
    html = await (await client.get("/office")).text()
    assert "Contentieux Martin" in html
    hold_id = re.search(r"/office/holds/(\d+)/lift", html).group(1)  # type: ignore[union-attr]
    refused = await client.post(
        f"/office/holds/{hold_id}/lift", data={"reason": "", "csrf_token": token}
    )
    html = await refused.text()
    assert "Lifting a hold needs a reason." in html and f"/office/holds/{hold_id}/lift" in html
    assert _active_holds(box) == [int(hold_id)]
    lifted = await client.post(
        f"/office/holds/{hold_id}/lift", data={"reason": "Affaire close", "csrf_token": token}
    )
    html = await lifted.text()
    assert "Legal hold lifted." in html and f"/office/holds/{hold_id}/lift" not in html
    assert _active_holds(box) == []


async def test_export_runs_in_the_background_and_downloads(
    client: Client, box: Box, tmp_path: Path
) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    page = await (await client.get("/exports")).text()
    token = csrf_of(page)
    form = {
        "kind": "conversation",
        "conversation": "1",
        "recipient": "Tribunal judiciaire",
        "reason": "Demande du juge",
        "csrf_token": token,
    }
    response = await client.post("/exports", data=form, allow_redirects=False)
    job_path = response.headers["Location"]
    await client.app[STATE].jobs.wait(job_path.rsplit("/", 1)[1])
    html = await (await client.get(job_path)).text()
    assert "The export is ready." in html and 'id="download"' in html
    download = await client.get(f"{job_path}/download")
    assert download.status == 200
    # The downloaded bytes are the sealed bundle of this box, whole: verify-export passes
    # on them, with this box's key, and they hold the conversation's three messages.
    saved = tmp_path / "downloaded.zip"
    saved.write_bytes(await download.read())
    report = verify_bundle(saved)
    assert report.ok, report.problems
    assert (report.kind, report.records) == ("export", 3)
    assert report.tree_head is not None
    box_key = box.require_archive().signing_key.verify_key
    box_key.verify(report.tree_head.signed_message(), report.tree_head.signature)
    assert [e.actor for e in _events(box, "export")] == ["archiviste"]  # type: ignore[attr-defined]


async def test_export_without_a_reason_is_refused(client: Client) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    token = csrf_of(await (await client.get("/exports")).text())
    form = {
        "kind": "conversation",
        "conversation": "1",
        "recipient": "",
        "reason": "",
        "csrf_token": token,
    }
    html = await (await client.post("/exports", data=form)).text()
    assert "Say what to export" in html


async def test_the_dashboard_says_each_nights_result_in_the_pages_language(
    box: Box, aiohttp_client: AiohttpClient
) -> None:
    """A French dashboard said "Retention run: 0 records destroyed, …" (the job's English
    summary); a run that succeeded is now said from its details, in the page's language.
    A failure keeps its cause's own words."""
    archive = box.require_archive()
    counts = {"destroyed": 2, "to_review": 1, "held": 3, "kept": 0}
    runs: dict[str, tuple[str, dict[str, Any]]] = {
        "retention": ("done", {"summary": "Retention run: 2 records destroyed", **counts}),
        "backup": ("failed", {"summary": "the backup target /media/usb is not mounted"}),
        "verify": ("done", {"summary": "OK", "kind": "incremental", "tree_size": 1234}),
    }
    for job, (outcome, details) in runs.items():
        archive.write(writes.audit("timer", f"nightjob.{outcome}", job, details))
    french = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(french, "admin", ADMIN_PASSWORD)
    page = " ".join((await (await french.get("/dashboard")).text()).split())
    assert (
        "Détruits : 2 · à réexaminer : 1 · protégés par un gel juridique : 3"
        " · gardés par un réexamen : 0"
    ) in page
    assert "Contrôle incrémental réussi, taille du journal 1" in page  # 1 234, grouped
    assert "the backup target /media/usb is not mounted" in page
    assert "Retention run" not in page
    english = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(english, "admin", ADMIN_PASSWORD)
    page = " ".join((await (await english.get("/dashboard")).text()).split())
    assert "Destroyed: 2 · waiting for review: 1 · protected by a legal hold: 3" in page
    assert "Incremental check passed, log size 1,234" in page
