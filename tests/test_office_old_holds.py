"""A date-range hold placed before the practice's zone was used (typed in the box's UTC
clock zone, its end the next day's 00:00, included) is shown with its exact date-times
in the practice's zone, on the web and in the CLI, never as the practice's days it does
not cover; a hold on whole practice days is still shown as days.

"2026-10-25" typed on a UTC box gave 25 Oct 00:00 UTC .. 26 Oct 00:00 UTC: in Paris,
25 Oct 02:00:00 CEST .. 26 Oct 01:00:00 CET (CEST ends on 25 Oct at 03:00).
"""

from __future__ import annotations

import asyncio
import html
import json
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import new_phone
from strongroom.office import holds, register_facts
from strongroom.office.migrations import ensure_office_schema
from test_cli_exports import strongroom
from test_office_time_zone import PRACTICE_ZONE, utc_ms
from web_helpers import ADMIN_PASSWORD, Client, login, new_box, web_app

OLD_FIRST, OLD_LAST = "2026-10-25 02:00:00", "2026-10-26 01:00:00"


def _date_hold(from_ms: int, to_ms: int, reason: str) -> holds.HoldSpec:
    return holds.HoldSpec(scope="date_range", reason=reason, from_ms=from_ms, to_ms=to_ms)


async def test_an_old_utc_hold_is_shown_with_its_exact_date_times(
    box_in_utc: None, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    archive.write(register_facts.set_details_op({register_facts.TIME_ZONE: PRACTICE_ZONE}, "t"))
    new_phone(archive, owner="maitre.durand", name="Pixel")
    old = _date_hold(utc_ms("2026-10-25T00:00:00"), utc_ms("2026-10-26T00:00:00"), "ancienne")
    archive.write(holds.place_hold(old, "greffe"))
    # A hold placed by this release on the practice's 25 Oct, both ends whole days.
    whole = _date_hold(utc_ms("2026-10-24T22:00:00"), utc_ms("2026-10-25T23:00:00") - 1, "neuve")
    archive.write(holds.place_hold(whole, "greffe"))

    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)
    office = await (await client.get("/office")).text()
    assert f'data-days="{OLD_FIRST}..{OLD_LAST}"' in office
    assert 'data-days="2026-10-25..2026-10-26"' not in office  # not the days it misses
    assert 'data-days="2026-10-25..2026-10-25"' in office
    # The old hold, and only it, says to check it (in French too).
    assert office.count("data-exact-bounds") == 1
    assert "placed before the upgrade): check that it covers" in office
    french = await (await client.get("/office", headers={"Accept-Language": "fr"})).text()
    french = html.unescape(french).replace("\xa0", " ")
    assert "(un gel posé avant la mise à jour) : vérifiez qu'il couvre" in french
    await box.stop()

    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    common = ["--data", str(box.config.data_dir), "--passphrase-file", str(secret)]
    listed = await asyncio.to_thread(strongroom, "hold", "list", *common, "--json")
    assert listed.returncode == 0, listed.stderr
    days = {h["reason"]: h["days"] for h in json.loads(listed.stdout)["holds"]}
    assert days == {
        "ancienne": [OLD_FIRST, OLD_LAST, PRACTICE_ZONE],
        "neuve": ["2026-10-25", "2026-10-25", PRACTICE_ZONE],
    }
    table = await asyncio.to_thread(strongroom, "hold", "list", *common)
    assert table.returncode == 0, table.stderr
    assert f"dates {OLD_FIRST}..{OLD_LAST} ({PRACTICE_ZONE})" in table.stdout
    assert f"dates 2026-10-25..2026-10-25 ({PRACTICE_ZONE})" in table.stdout
