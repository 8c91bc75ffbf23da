"""Wrong passphrases lock one account from one address, with a growing back-off, and the
lockouts and web sessions survive a restart of the web app (saved beside the archive)."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.web.sessions import SESSION_COOKIE
from strongroom.web.throttle import BASE_LOCK_S, MAX_LOCK_S, Throttle
from web_helpers import (
    ADMIN_PASSWORD,
    ARCHIVIST_PASSWORD,
    Client,
    another_browser,
    get_csrf,
    login,
    new_box,
    web_app,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def try_login(client: Client, username: str, password: str, **kw: object) -> str:
    token = await get_csrf(client)
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
        **kw,  # type: ignore[arg-type]
    )
    return f"{response.status} {await response.text()}"


def test_back_off_doubles_per_mistake_up_to_an_hour_and_is_per_pair() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    locks = [throttle.failed("claire", "10.0.0.5") for _ in range(12)]
    assert locks[:4] == [0, 0, 0, 0]
    assert locks[4:8] == [BASE_LOCK_S, 2 * BASE_LOCK_S, 4 * BASE_LOCK_S, 8 * BASE_LOCK_S]
    assert locks[-1] == MAX_LOCK_S
    assert throttle.wait_s("claire", "10.0.0.5") == MAX_LOCK_S
    assert throttle.wait_s("claire", "10.0.0.6") == 0  # Claire at another desk
    assert throttle.wait_s("bruno", "10.0.0.5") == 0  # Bruno at the same desk
    throttle.forgive("claire")  # an admin reset her login
    assert throttle.wait_s("claire", "10.0.0.5") == 0


async def test_the_lock_message_says_how_long_in_the_right_plural(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box = new_box(tmp_path / "data")
    clock = Clock()
    client = await aiohttp_client(web_app(box, clock=clock))
    for _ in range(4):
        await try_login(client, "admin", "pas la bonne phrase")
    fifth = await try_login(client, "admin", "pas la bonne phrase")
    assert fifth.startswith("403")
    assert "réessayez dans 1\u00a0minute." in fifth
    clock.now += 61
    sixth = await try_login(client, "admin", "pas la bonne phrase", headers={"Cookie": "lang=en"})
    assert "try again in 2 minutes." in sixth
    await client.close()
    await box.stop()


async def test_sessions_and_lockouts_survive_a_restart(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box = new_box(data)
    clock = Clock()
    client = await aiohttp_client(web_app(box, clock=clock))
    await login(client, "admin", ADMIN_PASSWORD)
    cookie = next(c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE)
    for _ in range(5):
        await try_login(client, "archiviste", "pas la bonne phrase")
    await client.close()  # the web app stops (its cleanup saves)
    await box.stop()

    saved = (data / "web-sessions.json").read_text()
    assert cookie not in saved  # only a digest of the session id is on disk
    assert json.loads(saved)["sessions"][0]["username"] == "admin"
    assert (data / "web-sessions.json").stat().st_mode & 0o777 == 0o600

    restarted = Box(BoxConfig(data_dir=data))
    restarted.unlock(ADMIN_PASSWORD)
    again = await aiohttp_client(web_app(restarted, clock=clock))
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    page = await again.get("/dashboard", headers=headers, allow_redirects=False)
    assert page.status == 200  # still logged in
    assert (await try_login(again, "archiviste", ARCHIVIST_PASSWORD)).startswith("429")
    assert (await try_login(again, "auditeur", "Auditeur externe 2024!")).startswith("303")
    clock.now += BASE_LOCK_S + 1
    assert (await try_login(again, "archiviste", ARCHIVIST_PASSWORD)).startswith("303")
    await again.close()
    await restarted.stop()


async def test_a_damaged_sessions_file_locks_nobody_out(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    box = new_box(data)
    (data / "web-sessions.json").write_text("{not json")
    client = await aiohttp_client(web_app(box))
    await login(client, "admin", ADMIN_PASSWORD)
    await client.close()
    await box.stop()


async def test_a_disabled_users_sessions_are_off_disk_at_once(
    tmp_path: Path, aiohttp_client
) -> None:
    """A power cut right after disabling someone must not bring their session back."""
    data = tmp_path / "data"
    box = new_box(data)
    admin = await aiohttp_client(web_app(box))
    await login(admin, "admin", ADMIN_PASSWORD)
    archivist = await another_browser(admin)
    await login(archivist, "archiviste", ARCHIVIST_PASSWORD)
    saved = json.loads((data / "web-sessions.json").read_text())
    assert "archiviste" in [s["username"] for s in saved["sessions"]]
    token = await get_csrf(admin, "/users")
    response = await admin.post(
        "/users/archiviste/disable", data={"csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    # Read before any shutdown: this is what a power cut would leave.
    saved = json.loads((data / "web-sessions.json").read_text())
    assert "archiviste" not in [s["username"] for s in saved["sessions"]]
    await archivist.close()
    await admin.close()
    await box.stop()
