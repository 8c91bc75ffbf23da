"""A loss the kept head witnessed, still named on the Integrity page after the restart's
first write (tree_head.lost, archive/lost_heads.py), over HTTP as an admin sees it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from e2e_helpers import prepare_data_dir
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


def cli_verify(data: Path, passphrase: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "strongroom",
            "verify",
            "--data",
            str(data),
            "--passphrase-file",
            str(passphrase),
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def opened(data: Path, text: str, count: int) -> None:
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    try:
        push(box, text, count)
    finally:
        await box.stop()


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


async def test_strongroom_verify_names_them_after_a_push_and_again_after(tmp_path: Path) -> None:
    # The CLI's journey on a stopped box (its own open of the archive).
    config = await prepare_data_dir(tmp_path / "box")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    await opened(config.data_dir, "avant", 3)
    shutil.copy(config.data_dir / "archive.db", tmp_path / "before.db")
    await opened(config.data_dir, "perdu", 5)
    shutil.copy(tmp_path / "before.db", config.data_dir / "archive.db")
    await opened(config.data_dir, "après", 1)  # the restart's first push
    for options in ((), ("--incremental",)):
        run = cli_verify(config.data_dir, passphrase, *options)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "tree_head.lost" in run.stdout + run.stderr
        assert "acknowledged records were lost" in run.stdout + run.stderr
