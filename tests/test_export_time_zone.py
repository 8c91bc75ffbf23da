"""The web export form and `strongroom export --from/--to` read typed days in the practice's
time zone, not the box's own: the same days give the same export range from both.

The box process runs in Asia/Tokyo (UTC+9), the practice is in America/New_York
(UTC-5 in March), and two records sit on either side of the day boundary:
  A  2024-03-10 02:00 UTC = 9 March 21:00 in New York = 10 March 11:00 in Tokyo
  B  2024-03-10 20:00 UTC = 10 March 15:00 in New York = 11 March 05:00 in Tokyo
"10 March" in the practice's zone holds B only; in the box's zone it would hold A only
(and in the CLI's former default, Europe/Paris, both).
"""

from __future__ import annotations

import asyncio
import os
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.office import register_facts
from strongroom.office.migrations import ensure_office_schema
from strongroom.office.verify_export import verify_bundle
from strongroom.web.state import STATE
from test_cli_exports import strongroom
from web_helpers import ADMIN_PASSWORD, ARCHIVIST_PASSWORD, Client, csrf_of, login, new_box, web_app

BOX_ZONE = "Asia/Tokyo"
PRACTICE_ZONE = "America/New_York"
RECORDS = {
    "2024-03-10T02:00:00": "A : la veille au soir à New York",
    "2024-03-10T20:00:00": "B : le 10 mars à New York",
}


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def box_in_tokyo(box_clock_zone: Callable[[str], None]) -> None:
    """This process (the box) and the CLI it starts live in Tokyo time."""
    box_clock_zone(BOX_ZONE)


def texts_in(bundle: Path) -> set[str]:
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    with zipfile.ZipFile(bundle) as zf:
        html = zf.read(next(n for n in zf.namelist() if n.endswith("records.html"))).decode()
    return {text for text in RECORDS.values() if text in html}


async def test_the_form_and_the_cli_export_the_same_range_for_the_same_days(
    box_in_tokyo: None, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    assert now.astimezone().utcoffset() == now.astimezone(ZoneInfo(BOX_ZONE)).utcoffset()
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    archive.write(register_facts.set_details_op({register_facts.TIME_ZONE: PRACTICE_ZONE}, "t"))
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    for at, text in RECORDS.items():
        record = message(key, text, at=utc_ms(at), peer="M. Martin")
        archive.write(writes.store_record(record, device_id, "maitre.durand"))

    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    page = await (await client.get("/exports")).text()
    assert f'data-zone="{PRACTICE_ZONE}"' in page  # the form says which zone it reads
    assert f"fuseau horaire du cabinet\u00a0: {PRACTICE_ZONE}" in page
    form = {"kind": "conversation", "conversation": "1", "recipient": "Tribunal"}
    form |= {"reason": "RG 24/1", "since": "2024-03-10", "until": "2024-03-10"}
    form["csrf_token"] = csrf_of(page)
    started = await client.post("/exports", data=form, allow_redirects=False)
    job_path = started.headers["Location"]
    job = await client.app[STATE].jobs.wait(job_path.rsplit("/", 1)[1])
    assert job.state.value == "done", job.error
    web_bundle = tmp_path / "web.zip"
    download = await client.get(f"{job_path}/download")
    web_bundle.write_bytes(await download.read())

    # A date that is no date: refused, nothing exported (not "no bound").
    form |= {
        "since": "10/03/2024",
        "csrf_token": csrf_of(await (await client.get("/exports")).text()),
    }
    refused = await client.post("/exports", data=form)
    assert "Les dates s’écrivent AAAA-MM-JJ" in await refused.text()
    assert len(client.app[STATE].jobs.for_owner("archiviste")) == 1
    await box.stop()

    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    cli_bundle = tmp_path / "cli.zip"
    args = ["export", "--data", str(box.config.data_dir), "--conversation", "1"]
    args += ["--from", "2024-03-10", "--to", "2024-03-10", "--out", str(cli_bundle)]
    args += ["--recipient", "Tribunal", "--reason", "RG 24/1", "--passphrase-file", str(secret)]
    assert os.environ["TZ"] == BOX_ZONE  # the CLI runs in the box's zone too
    done = await asyncio.to_thread(strongroom, *args)
    assert done.returncode == 0, done.stdout + done.stderr

    assert texts_in(web_bundle) == texts_in(cli_bundle) == {RECORDS["2024-03-10T20:00:00"]}
