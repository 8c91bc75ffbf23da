"""Wizard step 4 lists the drives actually plugged in: the backup drive and the USB key
for unattended unlock are picked from that list, not typed as Linux paths."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from strongroom.box import Box
from strongroom.identity import Keystore
from strongroom.web.settings import BACKUP_TARGET, get_setting
from test_recovery_kit import POSITION, post, start_wizard
from web_helpers import ADMIN_PASSWORD, csrf_of, new_box, web_app


async def reach_practice_step(client: TestClient) -> str:
    token, words = await start_wizard(client, "fr")
    form = await (await client.get("/setup/confirm")).text()
    answers = {f"word_{p}": words[int(p) - 1] for p in POSITION.findall(form)}
    await post(client, "/setup/confirm", token, **answers)
    fields = {"username": "gerante", "password": ADMIN_PASSWORD, "password_again": ADMIN_PASSWORD}
    assert await post(client, "/setup/admin", token, **fields) == 303
    return await (await client.get("/setup/practice")).text()


async def test_backup_drive_and_key_file_are_picked_from_the_plugged_drives(
    tmp_path: Path, aiohttp_client
) -> None:
    media = tmp_path / "media"
    backup, key = media / "SAUVEGARDE-1", media / "CLE-BOITIER"
    backup.mkdir(parents=True)
    key.mkdir()
    box: Box = new_box(tmp_path / "data", ready=False)
    client = await aiohttp_client(web_app(box, drive_roots=(media,)))
    page = await reach_practice_step(client)
    assert "SAUVEGARDE-1" in page and "CLE-BOITIER" in page
    assert "chemin absolu" not in page.lower()
    fields = {
        "practice_name": "Cabinet Durand",
        "backup_drive": str(backup),
        "unlock_mode": "unattended",
        "keyfile_drive": str(key),
        "unlock_passphrase": ADMIN_PASSWORD,
    }
    assert await post(client, "/setup/practice", csrf_of(page), **fields) == 303
    conn = box.require_archive().reader()
    assert get_setting(conn, BACKUP_TARGET) == str(backup / "strongroom-backups")
    conn.close()
    assert (backup / "strongroom-backups").is_dir()
    keyfile = key / "strongroom-unlock.key"
    assert keyfile.stat().st_size == 32
    assert Keystore(box.config.keystore_path).unlock_with_keyfile(keyfile)
    await client.close()
    await box.stop()


async def test_a_path_that_is_not_a_listed_drive_is_not_taken(
    tmp_path: Path, aiohttp_client
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    elsewhere = tmp_path / "not-a-drive"
    elsewhere.mkdir()
    box: Box = new_box(tmp_path / "data", ready=False)
    client = await aiohttp_client(web_app(box, drive_roots=(media,)))
    page = await reach_practice_step(client)
    assert 'id="no-drive"' in page  # nothing plugged in: said so, no path to type
    fields = {"practice_name": "Cabinet", "backup_drive": str(elsewhere), "unlock_mode": "attended"}
    assert await post(client, "/setup/practice", csrf_of(page), **fields) == 303
    conn = box.require_archive().reader()
    assert get_setting(conn, BACKUP_TARGET) is None
    conn.close()
    assert list(elsewhere.iterdir()) == []
    await client.close()
    await box.stop()
