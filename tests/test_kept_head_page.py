"""A loss the kept head witnessed, still named on the Integrity page after the restart's
first write (tree_head.lost, archive/lost_heads.py), over HTTP as an admin sees it."""

from __future__ import annotations

import shutil
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.web.state import STATE
from web_helpers import ADMIN_PASSWORD, csrf_of, login, new_box, web_app

OWNER = "maitre.durand"


def push(box: Box, text: str, count: int) -> None:
    archive = box.require_archive()
    device, key = new_phone(archive, owner=OWNER, name=text)
    archive.write_batch(
        [writes.store_record(message(key, f"{text} {i}"), device, OWNER) for i in range(count)]
    )


async def test_the_integrity_page_names_commits_lost_before_the_restart(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box = new_box(data)
    push(box, "avant", 3)
    await box.stop()
    shutil.copy(data / "archive.db", tmp_path / "before.db")
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    push(box, "perdu", 5)  # acknowledged, then dropped with the WAL
    await box.stop()
    shutil.copy(tmp_path / "before.db", data / "archive.db")
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    try:
        push(box, "après", 1)  # the restart's first push writes the kept head over
        client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
        await login(client, "admin", ADMIN_PASSWORD)
        token = csrf_of(await (await client.get("/dashboard")).text())
        job = (
            await client.post("/verify", data={"csrf_token": token}, allow_redirects=False)
        ).headers["Location"]
        await client.app[STATE].jobs.wait(job.rsplit("/", 1)[1])
        html = await (await client.get("/integrity")).text()
        assert "tree_head.lost" in html and "acknowledged records were lost" in html, html
    finally:
        await box.stop()
