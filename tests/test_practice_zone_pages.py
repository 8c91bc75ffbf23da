"""Times shown on the web are the practice's, not the box's clock zone (UTC on an
appliance): a message sent at 23:30 UTC on 4 December is, for a practice in Paris,
sent at 00:30 on 5 December, and every page says so (archive, record, devices, audit,
destruction certificates, holds), naming the zone where a lawyer needs certainty."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.office import register_facts, retention
from strongroom.office.migrations import ensure_office_schema
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.web.practice_zone import PracticeZone
from strongroom.web.render import NAVIGATION
from web_helpers import ADMIN_PASSWORD, Client, csrf_of, login, new_box, web_app

PRACTICE_ZONE = "Europe/Paris"
LATE_EVENING_UTC = int(datetime(2026, 12, 4, 23, 30, tzinfo=UTC).timestamp() * 1000)
PARIS_TIME = "Dec 5, 2026, 12:30:00\u202fAM"  # babel's English medium format, in Paris
UTC_DAY = "Dec 4, 2026"  # what the box's own clock zone would show
DAY_MS = 86_400_000
LATER_PARIS_TIME = "Dec 11, 2026, 12:30:00\u202fAM"  # six days on, same hour


async def test_every_page_shows_times_in_the_practices_zone(
    box_in_utc: None, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    now_s = [LATE_EVENING_UTC / 1000]  # the box's clock: 23:30 UTC on 4 Dec
    box = new_box(tmp_path / "data", clock=lambda: now_s[0])
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    archive.write(register_facts.set_details_op({register_facts.TIME_ZONE: PRACTICE_ZONE}, "t"))
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel")
    record = message(key, "rendez-vous demain", at=LATE_EVENING_UTC, conv="c1", peer="M. Martin")
    archive.write(writes.store_record(record, device_id, "maitre.durand"))
    archive.write(writes.audit("greffe", "test.zone", "late"))

    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)

    listing = await (await client.get("/archive?q=rendez")).text()
    assert "Dec 5, 2026" in listing and UTC_DAY not in listing
    row = re.search(r'href="/archive/records/(\d+)"', listing)
    assert row is not None, listing[:400]
    shown = await (await client.get(f"/archive/records/{row.group(1)}")).text()
    assert PARIS_TIME in shown and UTC_DAY not in shown
    assert f'data-zone="{PRACTICE_ZONE}"' in shown  # "Sent at" names the zone

    devices = await (await client.get("/devices")).text()
    assert PARIS_TIME in devices and UTC_DAY not in devices  # paired at 00:30 in Paris

    audit = await (await client.get("/audit?action=test.zone")).text()
    assert PARIS_TIME in audit and f"({PRACTICE_ZONE})" in audit

    # A destruction certificate made at 23:30 UTC on 10 Dec: 00:30 on 11 Dec in Paris
    # (the archive's clock only moves on: the hold below is placed then too).
    policy = archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "t")
    )
    archive.write(assign_policy("contact", "M. Martin", int(policy), "t"))
    now_s[0] = (LATE_EVENING_UTC + 6 * DAY_MS) / 1000
    destroyed = retention.run(archive, int(now_s[0] * 1000), approver="maitre.durand")
    assert destroyed.destruction.destroyed == 1
    certificates = await (await client.get("/office/certificates")).text()
    listed = certificates[certificates.index("<tbody>") :]
    assert LATER_PARIS_TIME in listed and "Dec 10, 2026" not in listed
    assert f'data-zone="{PRACTICE_ZONE}">({PRACTICE_ZONE})' in certificates

    office = await (await client.get("/office")).text()
    form = {"scope": "conversation", "conversation": "1", "reason": "plainte"}
    form |= {"case": "RG 26/1", "csrf_token": csrf_of(office)}
    placed = await client.post("/office/holds", data=form, allow_redirects=False)
    assert placed.status == 303
    office = await (await client.get("/office")).text()
    holds = office[office.index("Placed by") :]
    assert holds.startswith(f'Placed by <span class="muted small" data-zone="{PRACTICE_ZONE}">')
    assert LATER_PARIS_TIME in holds and "Dec 10, 2026" not in holds  # placed at 23:30 UTC
    await box.stop()


async def test_the_recovery_sheet_is_dated_the_practices_day(
    box_in_utc: None, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """At 23:30 UTC on 30 June it is already 1 July in Paris: the sheet says so (and
    reads the box's clock, not the machine's date)."""
    from test_recovery_kit import pdf_text, start_wizard

    def clock() -> float:
        return datetime(2026, 6, 30, 23, 30, tzinfo=UTC).timestamp()

    box = new_box(tmp_path / "data", ready=False, clock=clock)
    client: Client = await aiohttp_client(web_app(box, clock=clock))
    await start_wizard(client, "en")
    sheet = pdf_text(await (await client.get("/setup/kit.pdf")).read(), tmp_path)
    assert "July 1, 2026" in sheet and "June 30" not in sheet
    await client.close()
    await box.stop()


async def test_the_zone_is_read_only_for_pages_that_show_times(
    box_in_utc: None,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The practice's zone is a lazy per-request value: every page with times awaits it
    (none falls back to a read on the event loop), and a POST that redirects or a
    download reads nothing."""
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    archive.write(register_facts.set_details_op({register_facts.TIME_ZONE: PRACTICE_ZONE}, "t"))
    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)
    pages = [path for path, _, _ in NAVIGATION]
    pages += ["/office/due", "/office/matters", "/office/certificates", "/report/details"]
    with caplog.at_level(logging.WARNING, logger="strongroom.web.practice_zone"):
        for path in pages:
            before = PracticeZone.reads
            response = await client.get(path, allow_redirects=False)
            assert response.status == 200, path
            assert PracticeZone.reads <= before + 1, path  # at most once per request
    assert not [r for r in caplog.records if "without awaiting" in r.getMessage()]

    before = PracticeZone.reads
    download = await client.get("/identity/box.pem")
    assert download.status == 200 and (await download.text()).startswith("-----BEGIN")
    token = csrf_of(await (await client.get("/identity")).text())
    assert PracticeZone.reads == before  # /identity shows no time either
    out = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status in (302, 303)
    assert PracticeZone.reads == before
    await login(client, "admin", ADMIN_PASSWORD)
    dashboard = await client.get("/dashboard")
    assert dashboard.status == 200 and PracticeZone.reads == before + 1
    await box.stop()
