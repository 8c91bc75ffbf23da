"""Web exports: by date range, never in clear on the box's disk, removed once downloaded,
and destroyed with their records if retention destroys any before the download."""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.office import retention
from strongroom.office.migrations import ensure_office_schema
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.office.verify_export import verify_bundle
from strongroom.web.state import STATE
from web_helpers import ARCHIVIST_PASSWORD, Client, csrf_of, login, new_box, web_app

TEXTS = {
    "2024-01-10": "Janvier : premier rendez-vous",
    "2024-02-10": "Février : la pièce confidentielle",
    "2024-03-10": "Mars : la suite",
}


def noon(day: str) -> int:
    return int(datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    ensure_office_schema(archive.conn)
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel de Maître Durand")
    for day, text in TEXTS.items():
        record = message(key, text, at=noon(day), peer="M. Martin")
        archive.write(writes.store_record(record, device_id, "maitre.durand"))
    yield box
    await box.stop()


async def start(client: Client, **fields: str) -> str:
    token = csrf_of(await (await client.get("/exports")).text())
    form = {"kind": "conversation", "conversation": "1", "recipient": "Tribunal"}
    form |= {"reason": "RG 24/1", "csrf_token": token, **fields}
    response = await client.post("/exports", data=form, allow_redirects=False)
    job_path = response.headers["Location"]
    job = await client.app[STATE].jobs.wait(job_path.rsplit("/", 1)[1])
    assert job.state.value == "done", job.error
    return job_path


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


async def download_verified(client: Client, job_path: str, bundle: Path, records: int) -> str:
    """Download the export into `bundle`, check it verifies with `records` records, and
    return its records.html."""
    download = await client.get(f"{job_path}/download")
    assert download.status == 200
    await asyncio.to_thread(bundle.write_bytes, await download.read())
    report = await asyncio.to_thread(verify_bundle, bundle)
    assert report.ok and report.records == records, report.problems
    with zipfile.ZipFile(bundle) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("records.html"))).decode()


async def test_a_date_range_export_never_lies_in_clear_and_goes_once_downloaded(
    box: Box,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> None:
    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    page = await (await client.get("/exports")).text()
    assert 'name="since" type="date"' in page and "Période (facultatif)" in page
    job_path = await start(client, since="2024-02-01", until="2024-02-28")

    # Waiting for its download: nothing on the box's disk says what it holds.
    work_dir = client.app[STATE].work_dir
    (spool,) = await asyncio.to_thread(files_under, work_dir)
    for path in await asyncio.to_thread(files_under, box.config.data_dir):
        data = await asyncio.to_thread(path.read_bytes)
        assert b"confidentielle" not in data, path
        assert b"PK\x03\x04" not in data and b"export.json" not in data, path

    bundle = tmp_path / "export.zip"
    html = await download_verified(client, job_path, bundle, records=1)
    assert TEXTS["2024-02-10"] in html
    assert TEXTS["2024-01-10"] not in html and TEXTS["2024-03-10"] not in html

    # Downloaded: removed from the box; the link is gone.
    assert not await asyncio.to_thread(spool.exists)
    assert (await client.get(f"{job_path}/download")).status == 404
    assert 'id="download"' not in await (await client.get(job_path)).text()


async def test_an_export_waiting_for_download_is_destroyed_with_its_records(
    box: Box,
    aiohttp_client: AiohttpClient,
) -> None:
    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    job_path = await start(client)
    (spool,) = await asyncio.to_thread(files_under, client.app[STATE].work_dir)
    archive = box.require_archive()
    policy = archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    # Now, on the box's own clock: a decision dated before its newest head is refused.
    result = await asyncio.to_thread(retention.run, archive, int(time.time() * 1000))
    assert result.destruction.destroyed == 3

    refused = await client.get(f"{job_path}/download", allow_redirects=False)
    assert refused.status == 303
    assert not await asyncio.to_thread(spool.exists)
    page = await (await client.get(refused.headers["Location"])).text()
    assert "the export was destroyed too" in page
    assert (await client.get(f"{job_path}/download")).status == 404


async def test_a_matter_is_exported_from_its_page_with_its_conversations_only(
    box: Box,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
) -> None:
    from strongroom.office.matters import attach, create_matter
    from test_export_matter import verify_txt_passes

    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="dr.petit", name="Pixel du Dr Petit")
    other = message(key, "Autre dossier : Mme Bernard", at=noon("2024-02-11"), peer="Mme Bernard")
    archive.write(writes.store_record(other, device_id, "dr.petit"))
    matter_id = int(archive.write(create_matter("2024-017", "M. Martin", "Me Durand", "admin")))
    archive.write(attach(matter_id, "admin", conversation_id=1))

    client: Client = await aiohttp_client(web_app(box), headers={"Accept-Language": "fr"})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    matters_page = await (await client.get("/office/matters")).text()
    link = f'href="/exports?matter={matter_id}"'
    assert link in matters_page and "Exporter ce dossier" in matters_page
    page = await (await client.get(f"/exports?matter={matter_id}")).text()
    # The matter chosen in its picker: its label typed, its number picked.
    assert 'data-picker="matter"' in page and 'value="2024-017 M. Martin"' in page
    assert f'name="matter_id" id="export-matter-id" value="{matter_id}"' in page
    assert 'value="matter" id="export-kind-matter" checked' in page
    job_path = await start(client, kind="matter", matter=str(matter_id))

    bundle = tmp_path / "matter.zip"
    html = await download_verified(client, job_path, bundle, records=3)
    assert "Dossier / matter 2024-017 — M. Martin" in html
    assert all(text in html for text in TEXTS.values())
    assert "Mme Bernard" not in html
    await asyncio.to_thread(verify_txt_passes, bundle, tmp_path / "verify")

    # A matter that does not exist: a clear message, no job.
    token = csrf_of(await (await client.get("/exports")).text())
    form = {"kind": "matter", "matter": "", "recipient": "T", "reason": "R", "csrf_token": token}
    refused = await client.post("/exports", data=form, allow_redirects=False)
    assert refused.status == 303 and refused.headers["Location"] == "/exports"
