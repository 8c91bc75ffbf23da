"""A loss the kept head witnessed, still named on the Integrity page and by `strongroom
verify` after the restart's first write (tree_head.lost, archive/lost_heads.py), until an
administrator acknowledges it there or with `strongroom losses` (archive/losses.py)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from e2e_helpers import Clock, start_box
from records_office_helpers import run_strongroom
from strongroom.archive import writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.web.state import STATE
from web_helpers import (
    ADMIN_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    another_browser,
    csrf_of,
    login,
    new_box,
    web_app,
)

OWNER = "maitre.durand"
ACKNOWLEDGE = "/integrity/losses/tree_head.lost/acknowledge"
NOTE = "Sauvegarde du 5 décembre restaurée ; les téléphones ont renvoyé le reste."


def push(box: Box, text: str, count: int) -> None:
    archive = box.require_archive()
    device, key = new_phone(archive, owner=OWNER, name=text)
    archive.write_batch(
        [writes.store_record(message(key, f"{text} {i}"), device, OWNER) for i in range(count)]
    )


async def opened(data: Path, text: str, count: int) -> None:
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    try:
        push(box, text, count)
    finally:
        await box.stop()


async def lose_commits(data: Path) -> None:
    """Three records kept, five acknowledged then dropped with the WAL (an older
    archive.db put back), one pushed after the restart: its first write."""
    await opened(data, "avant", 3)
    shutil.copy(data / "archive.db", data.parent / "before.db")
    await opened(data, "perdu", 5)
    shutil.copy(data.parent / "before.db", data / "archive.db")
    await opened(data, "après", 1)


def head_of(page: str) -> str:
    """The head the confirmation page shows, and posts back (hidden field)."""
    shown = re.search(r'<code class="wrap" data-head>([^<]+)</code>', page)
    posted = re.search(r'<input type="hidden" name="head" value="([^"]+)">', page)
    assert shown and posted and shown[1] == posted[1], page
    return posted[1]


async def a_new_loss_under_the_same_name(data: Path) -> tuple[bytes, bytes]:
    """Two losses, the first one's file in place: (its bytes, the second's). Writing the
    second over it is what moving the first away and a later loss written under the
    freed name leave (review L2), done here while an administrator looks at the first."""
    await lose_commits(data)
    first = (data / "tree_head.lost").read_bytes()
    (data / "tree_head.lost").unlink()
    await lose_commits(data)
    second = (data / "tree_head.lost").read_bytes()
    assert second != first
    (data / "tree_head.lost").write_bytes(first)
    return first, second


async def data_with_a_loss(tmp_path: Path, *, renamed: bool = False) -> tuple[Path, bytes]:
    """A stopped box's data dir (admin, archiviste, auditeur) whose kept head witnessed
    lost commits (lose_commits). `renamed`: a second loss written under the first one's
    name (a_new_loss_under_the_same_name), returned; else b""."""
    data = tmp_path / "data"
    await new_box(data).stop()
    if renamed:
        _, second = await a_new_loss_under_the_same_name(data)
        return data, second
    await lose_commits(data)  # the restart's first push wrote the kept head over
    return data, b""


def passphrase_file(tmp_path: Path) -> Path:
    """The admin's passphrase in a file, as `strongroom --passphrase-file` reads it."""
    path = tmp_path / "passphrase"
    path.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    return path


@asynccontextmanager
async def admin_on_the_web(data: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[Client]:
    """The box of `data` unlocked, its web app, and the admin logged in (English)."""
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    try:
        client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
        await login(client, "admin", ADMIN_PASSWORD)
        yield client
    finally:
        await box.stop()


async def acknowledged_on_the_web(
    client: Client, token: str, head: str | None, note: str = NOTE
) -> str:
    """The confirmation page's form posted (without a head: an older page's); where
    the box sends the browser next."""
    data = {"csrf_token": token, "note": note} | ({} if head is None else {"head": head})
    response = await client.post(ACKNOWLEDGE, data=data, allow_redirects=False)
    return response.headers["Location"]


async def test_the_integrity_page_names_commits_lost_before_the_restart(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data, _ = await data_with_a_loss(tmp_path)
    async with admin_on_the_web(data, aiohttp_client) as client:
        token = csrf_of(await (await client.get("/dashboard")).text())
        job = (
            await client.post("/verify", data={"csrf_token": token}, allow_redirects=False)
        ).headers["Location"]
        await client.app[STATE].jobs.wait(job.rsplit("/", 1)[1])
        html = await (await client.get("/integrity")).text()
        assert "tree_head.lost" in html and "acknowledged records were lost" in html, html
        assert 'data-loss="tree_head.lost" data-state="open"' in html
        assert 'data-ok="false"' in html
        auditor = await another_browser(client)
        await login(auditor, "auditeur", AUDITOR_PASSWORD)
        try:  # an auditor reads the loss, in French here, and cannot acknowledge it
            seen = await (await auditor.get("/integrity")).text()
            assert "Pas encore prise en compte" in seen and ACKNOWLEDGE not in seen
            refused = await auditor.get(ACKNOWLEDGE, allow_redirects=False)
            assert refused.status == 403, refused.status
        finally:
            await auditor.session.close()  # its own cookies only: the server stays up

        page = await (await client.get(ACKNOWLEDGE)).text()
        assert "Acknowledge this loss?" in page and "acknowledged records were lost" in page
        token, head = csrf_of(page), head_of(page)
        # Nothing written without a note: the confirmation page again.
        assert await acknowledged_on_the_web(client, token, head, " ") == ACKNOWLEDGE
        assert await acknowledged_on_the_web(client, token, head) == "/integrity"
        html = await (await client.get("/integrity")).text()
        assert "Loss acknowledged" in html and 'data-state="acknowledged"' in html
        assert "Acknowledged by admin on " in html and NOTE in html
        assert (await client.get(ACKNOWLEDGE)).status == 404  # once
        trail = await (await client.get("/audit")).text()  # the signed trail, as people read it
        assert "Lost commits acknowledged" in trail and NOTE in trail
        job = (
            await client.post("/verify", data={"csrf_token": token}, allow_redirects=False)
        ).headers["Location"]
        await client.app[STATE].jobs.wait(job.rsplit("/", 1)[1])
        html = await (await client.get("/integrity")).text()
        assert 'id="integrity-failure"' not in html  # the newest check passed
        assert (data / "tree_head.lost").exists()


async def test_strongroom_verify_names_them_until_the_loss_is_acknowledged(tmp_path: Path) -> None:
    # The CLI's journey on a stopped box (its own open of the archive).
    data, _ = await data_with_a_loss(tmp_path)
    passphrase = passphrase_file(tmp_path)
    for options in ((), ("--incremental",)):
        run = run_strongroom(data, "verify", *options, passphrase_file=passphrase)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "PROBLEM: log: tree_head.lost:" in run.stdout
        assert "acknowledged records were lost" in run.stdout

    listed = run_strongroom(data, "losses", "list", passphrase_file=passphrase)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "tree_head.lost: unacknowledged" in listed.stdout
    (head,) = re.findall(r"^  head: (\d+:[0-9a-f]{64})$", listed.stdout, re.MULTILINE)
    assert f"strongroom losses acknowledge tree_head.lost --head {head} --note TEXT" in (
        listed.stdout
    )
    refused = run_strongroom(
        data, "losses", "acknowledge", "tree_head.lost.3", "--note", "?", passphrase_file=passphrase
    )
    assert refused.returncode == 2 and "names no loss" in refused.stderr, refused.stderr
    note = "sauvegarde du 5 décembre restaurée"
    done = run_strongroom(
        data,
        "losses",
        "acknowledge",
        "tree_head.lost",
        "--head",
        head,
        "--note",
        note,
        "--as",
        OWNER,
        passphrase_file=passphrase,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"tree_head.lost: loss acknowledged by {OWNER}" in done.stdout

    passed = run_strongroom(data, "verify", passphrase_file=passphrase)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "OK: the archive verifies" in passed.stdout
    assert "NOTE: log: tree_head.lost:" in passed.stdout
    assert f"acknowledged by {OWNER} on " in passed.stdout and note in passed.stdout
    as_json = run_strongroom(data, "losses", "list", "--json", passphrase_file=passphrase)
    (loss,) = json.loads(as_json.stdout)["losses"]
    assert loss["file"] == "tree_head.lost" and loss["acknowledged"]["by"] == OWNER
    assert (data / "tree_head.lost").exists()  # the evidence stays


async def test_the_running_box_answers_losses_and_its_verify_notes_the_acknowledged_one(
    tmp_path: Path,
) -> None:
    # No passphrase: the running box does the work (control socket, night job).
    data, _ = await data_with_a_loss(tmp_path)
    running = await start_box(BoxConfig(data_dir=data, port=0), clock=Clock())
    try:
        failed = await asyncio.to_thread(run_strongroom, data, "verify")
        assert failed.returncode == 1 and "tree_head.lost:" in failed.stderr, failed.stderr
        # The running box's one line (operations.md, "Everyday commands": verify).
        said = "strongroom: verify failed: full verify: 1 problem(s): log: tree_head.lost: "
        assert failed.stderr.startswith(said), failed.stderr
        listed = await asyncio.to_thread(run_strongroom, data, "losses", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (loss,) = json.loads(listed.stdout)["losses"]
        assert (loss["file"], loss["acknowledged"]) == ("tree_head.lost", None)
        done = await asyncio.to_thread(
            run_strongroom, data, "losses", "acknowledge", "tree_head.lost", "--note", NOTE
        )
        assert done.returncode == 0, done.stderr
        assert "loss acknowledged by cli" in done.stdout
        passed = await asyncio.to_thread(run_strongroom, data, "verify")
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert "OK: the archive verifies" in passed.stdout
        assert "; NOTE: log: tree_head.lost:" in passed.stdout and NOTE in passed.stdout
    finally:
        await running.stop()


async def test_a_file_changed_after_its_confirmation_page_is_not_acknowledged(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data, second = await data_with_a_loss(tmp_path, renamed=True)
    async with admin_on_the_web(data, aiohttp_client) as client:
        page = await (await client.get(ACKNOWLEDGE)).text()
        token, shown = csrf_of(page), head_of(page)
        (data / "tree_head.lost").write_bytes(second)  # while the admin writes the note
        assert await acknowledged_on_the_web(client, token, shown) == "/integrity"
        html = await (await client.get("/integrity")).text()
        assert "The file changed since its confirmation page was shown" in html, html
        assert 'data-loss="tree_head.lost" data-state="open"' in html
        assert "Loss acknowledged" not in html
        trail = await (await client.get("/audit")).text()
        assert "Lost commits acknowledged" not in trail
        # A page without the head it showed (an older page, a hand-made form): refused.
        assert await acknowledged_on_the_web(client, token, None) == "/integrity"
        assert "no longer be acknowledged" in await (await client.get("/integrity")).text()

        page = await (await client.get(ACKNOWLEDGE)).text()  # looked at again
        now = head_of(page)
        assert now != shown
        assert await acknowledged_on_the_web(client, token, now) == "/integrity"
        html = await (await client.get("/integrity")).text()
        assert "Loss acknowledged" in html and 'data-state="acknowledged"' in html


async def test_strongroom_losses_acknowledge_refuses_a_file_changed_since_listed(
    tmp_path: Path,
) -> None:
    data, second = await data_with_a_loss(tmp_path, renamed=True)
    passphrase = passphrase_file(tmp_path)

    def listed() -> dict[str, object]:
        run = run_strongroom(data, "losses", "list", "--json", passphrase_file=passphrase)
        assert run.returncode == 0, run.stderr
        (loss,) = json.loads(run.stdout)["losses"]
        return loss  # type: ignore[no-any-return]

    def acknowledge(head: str) -> subprocess.CompletedProcess[str]:
        return run_strongroom(
            data,
            "losses",
            "acknowledge",
            "tree_head.lost",
            "--head",
            head,
            "--note",
            NOTE,
            passphrase_file=passphrase,
        )

    shown = str(listed()["head"])
    (data / "tree_head.lost").write_bytes(second)
    refused = acknowledge(shown)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "tree_head.lost changed since it was shown" in refused.stderr
    garbled = acknowledge("12:zz")
    assert garbled.returncode == 2 and "not SIZE:ROOTHEX" in garbled.stderr, garbled.stderr
    again = listed()
    assert again["acknowledged"] is None and again["head"] != shown
    done = acknowledge(str(again["head"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert listed()["acknowledged"] is not None
