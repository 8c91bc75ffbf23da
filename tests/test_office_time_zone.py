"""Legal holds and audit filters read typed days in the practice's time zone, on the web
and in the CLI, at a daylight-saving edge: "25 Oct" is the practice's 25 Oct.

The box runs in UTC (as an appliance does); the practice is in Europe/Paris, where
25 October 2026 lasts 25 hours (CEST ends at 03:00, UTC+2 → UTC+1). Four instants:
  IN_EARLY  2026-10-24 22:30 UTC = 25 Oct 00:30 CEST
  IN_LATE   2026-10-25 22:59:59.999 UTC = 25 Oct 23:59:59.999 CET (last ms of the day)
  OUT_EVE   2026-10-24 21:30 UTC = 24 Oct 23:30 CEST
  OUT_NEXT  2026-10-25 23:00 UTC = 26 Oct 00:00:00.000 CET (first ms of the next day)
"25 Oct" holds IN_EARLY and IN_LATE only; read in UTC it would take IN_LATE and
OUT_NEXT and leave IN_EARLY out.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.office import register_facts
from strongroom.office.migrations import ensure_office_schema
from test_cli_exports import strongroom
from web_helpers import ADMIN_PASSWORD, Client, csrf_of, login, new_box, web_app

PRACTICE_ZONE = "Europe/Paris"
DAY = "2026-10-25"


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


INSTANTS = {  # in time order: the archive's clock only moves on
    "out-eve": utc_ms("2026-10-24T21:30:00"),
    "in-early": utc_ms("2026-10-24T22:30:00"),
    "in-late": utc_ms("2026-10-25T22:59:59.999"),
    "out-next": utc_ms("2026-10-25T23:00:00"),
}


async def test_holds_and_audit_filters_read_the_practices_day_across_dst(
    box_in_utc: None, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    now_s = [utc_ms("2026-10-01T00:00:00") / 1000]  # the box's clock, set by the test
    box = new_box(tmp_path / "data", clock=lambda: now_s[0])
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    archive.write(register_facts.set_details_op({register_facts.TIME_ZONE: PRACTICE_ZONE}, "t"))
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel")
    for name, at in INSTANTS.items():
        record = message(key, f"message {name}", at=at, conv=name, peer="M. Martin")
        archive.write(writes.store_record(record, device_id, "maitre.durand"))
        now_s[0] = at / 1000  # an audit event's time is the box's clock
        archive.write(writes.audit("greffe", "test.edge", name))
    now_s[0] = time.time()

    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "admin", ADMIN_PASSWORD)

    # The audit filter.
    page = await (await client.get(f"/audit?action=test.edge&since={DAY}&until={DAY}")).text()
    assert f'data-zone="{PRACTICE_ZONE}"' in page  # the page says which zone it reads
    shown = {name for name in INSTANTS if f'data-target="{name}"' in page}
    assert shown == {"in-early", "in-late"}
    # Its times are the practice's too: the first event is 00:30 on the 25th in Paris.
    row = page[page.index('data-target="in-early"') :]
    assert re.match(r'data-target="in-early"><td>Oct 25, 2026, 12:30:00', row), row[:120]

    # A date-range hold placed on the web.
    office = await (await client.get("/office")).text()
    assert 'id="hold-zone"' in office and f'data-zone="{PRACTICE_ZONE}"' in office
    form = {"scope": "date_range", "since": DAY, "until": DAY, "reason": "plainte"}
    form |= {"case": "RG 26/1", "csrf_token": csrf_of(office)}
    placed = await client.post("/office/holds", data=form, allow_redirects=False)
    assert placed.status == 303
    office = await (await client.get("/office")).text()
    assert f'data-days="{DAY}..{DAY}"' in office
    assert "2 records" in office  # IN_EARLY and IN_LATE, not OUT_EVE nor OUT_NEXT
    await box.stop()

    # The same days in the CLI (box stopped: it opens the archive itself).
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    common = ["--data", str(box.config.data_dir), "--passphrase-file", str(secret), "--json"]
    listed = await asyncio.to_thread(
        strongroom, "audit", "--action", "test.edge", "--from", DAY, "--to", DAY, *common
    )
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)["events"]
    assert {e["target"] for e in events} == {"in-early", "in-late"}

    added = await asyncio.to_thread(
        strongroom, "hold", "add", "--from", DAY, "--to", DAY, "--reason", "plainte", *common
    )
    assert added.returncode == 0, added.stderr
    hold = json.loads(added.stdout)["hold"]
    assert hold["days"] == [DAY, DAY, PRACTICE_ZONE] and hold["records"] == 2
    web_hold = json.loads((await asyncio.to_thread(strongroom, "hold", "list", *common)).stdout)[
        "holds"
    ]
    assert [h["records"] for h in web_hold] == [2, 2]

    # A day that is no day: refused, nothing placed.
    bad = await asyncio.to_thread(
        strongroom, "hold", "add", "--from", "25/10/2026", "--to", DAY, "--reason", "x", *common
    )
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
