"""Every admin can unlock: keystore slots follow the admin accounts (web UI, real box)."""

from __future__ import annotations

from pathlib import Path

from pytest_aiohttp import AiohttpClient

from strongroom.archive.audit_reads import audit_events
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.identity import Keystore
from strongroom.unlock import BoxPhase
from web_helpers import (
    ADMIN_PASSWORD,
    Client,
    another_browser,
    csrf_of,
    get_csrf,
    login,
    new_box,
    web_app,
)

BRUNO = "Bruno garde les clés 2"


async def post(client: Client, path: str, data: dict[str, str], page: str = "/users") -> int:
    token = await get_csrf(client, page)
    response = await client.post(path, data={**data, "csrf_token": token}, allow_redirects=False)
    return response.status


async def create_admin(client: Client, name: str, password: str) -> None:
    status = await post(client, "/users", {"username": name, "password": password, "role": "admin"})
    assert status == 303


async def unlock(client: Client, username: str, passphrase: str) -> int:
    data = {"username": username, "passphrase": passphrase}
    return await post(client, "/unlock", data, page="/unlock")


def owners(data_dir: Path) -> list[str]:
    return Keystore(data_dir / "keystore.json").owners


async def box_with_bruno(data: Path, aiohttp_client: AiohttpClient) -> tuple[Box, Client]:
    """A ready box whose admin, logged in on the returned client, created admin Bruno."""
    box = new_box(data)
    client = await aiohttp_client(web_app(box))
    await login(client, "admin", ADMIN_PASSWORD)
    await create_admin(client, "bruno", BRUNO)
    return box, client


async def test_a_second_admin_created_in_the_ui_unlocks_after_a_restart(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box, client = await box_with_bruno(data, aiohttp_client)
    # The wizard-less test box has an owner-less slot; the admin's login named it.
    assert owners(data) == ["admin", "bruno"]
    assert "bruno" in await (await client.get("/users")).text()
    await client.close()
    await box.stop()

    rebooted = Box(BoxConfig(data_dir=data))
    assert rebooted.phase is BoxPhase.LOCKED
    client = await aiohttp_client(web_app(rebooted))
    assert await unlock(client, "bruno", "not Bruno's passphrase") == 403
    assert rebooted.phase is BoxPhase.LOCKED
    assert await unlock(client, "bruno", BRUNO) == 303
    assert rebooted.phase is BoxPhase.READY  # type: ignore[comparison-overlap]
    conn = rebooted.require_archive().reader()
    assert [e.target for e in audit_events(conn, action="box.unlock")] == ["bruno"]
    conn.close()
    await client.close()
    await rebooted.stop()


async def test_disabling_an_admin_removes_their_unlock_but_never_the_last(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box, client = await box_with_bruno(data, aiohttp_client)
    assert await post(client, "/users/bruno/disable", {}) == 303
    assert owners(data) == ["admin"]
    assert await post(client, "/users/bruno/enable", {}) == 303
    assert owners(data) == ["admin"]  # enabled again, but no unlock until a reset

    # Bruno (an admin without a slot) tries to disable the only admin who can unlock.
    other = await another_browser(client)
    await login(other, "bruno", BRUNO)
    assert await post(other, "/users/admin/disable", {}) == 303
    page = await (await other.get("/users")).text()
    assert "dernier administrateur" in page
    assert owners(data) == ["admin"]
    again = await another_browser(client)
    await login(again, "admin", ADMIN_PASSWORD)  # still enabled
    for c in (client, other, again):
        await c.close()
    await box.stop()


async def test_change_own_passphrase_and_reset_another_admin(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box, admin = await box_with_bruno(data, aiohttp_client)

    bruno = await another_browser(admin)
    await login(bruno, "bruno", BRUNO)
    new = "Bruno change tout 3"
    wrong = {"current": "pas la bonne", "new": new, "again": new}
    assert await post(bruno, "/account/passphrase", wrong, page="/account") == 403
    mismatch = {"current": BRUNO, "new": new, "again": new + "!"}
    assert await post(bruno, "/account/passphrase", mismatch, page="/account") == 400
    ok = {"current": BRUNO, "new": new, "again": new}
    assert await post(bruno, "/account/passphrase", ok, page="/account") == 303
    assert Keystore(data / "keystore.json").unlock(new, "bruno")

    # Bruno forgets it; the admin resets his login: his sessions end, the new one unlocks.
    reset = "Remise à zéro 2026"
    assert await post(admin, "/users/bruno/reset", {"password": reset}) == 303
    assert (await bruno.get("/dashboard", allow_redirects=False)).status == 303
    await login(bruno, "bruno", reset)
    assert Keystore(data / "keystore.json").unlock(reset, "bruno")
    # A too-short reset is refused and changes nothing.
    assert await post(admin, "/users/bruno/reset", {"password": "court"}) == 303
    assert Keystore(data / "keystore.json").unlock(reset, "bruno")
    conn = box.require_archive().reader()
    assert [(e.actor, e.target) for e in audit_events(conn, action="user.reset")] == [
        ("admin", "bruno")
    ]
    assert [e.target for e in audit_events(conn, action="user.passphrase")] == ["bruno"]
    conn.close()
    for c in (admin, bruno):
        await c.close()
    await box.stop()


async def test_account_page_in_both_languages(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box = new_box(tmp_path / "data")
    client = await aiohttp_client(web_app(box))
    await login(client, "archiviste", "Archives du cabinet 2024")
    french = await (await client.get("/account")).text()
    assert "Changer ma phrase secrète" in french
    english = await (
        await client.get("/account", headers={"Accept-Language": "en", "Cookie": "lang=en"})
    ).text()
    assert "Change my passphrase" in english
    csrf_of(french)
    await client.close()
    await box.stop()
