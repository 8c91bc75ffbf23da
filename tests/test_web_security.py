"""HTTP-level security of the web UI, against a real Box on a tmp data dir."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import audit_events
from strongroom.archive.listings import list_devices
from strongroom.box import Box
from strongroom.web.sessions import SESSION_COOKIE
from strongroom.web.users import get_user
from support.clock import Clock
from web_helpers import (
    ADMIN_PASSWORD,
    ARCHIVIST_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    attach_file,
    csrf_of,
    get_csrf,
    login,
    new_box,
    web_app,
)

ClientMaker = Callable[..., "object"]


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data")
    yield box
    await box.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000.0)


@pytest.fixture
async def client(box: Box, clock: Clock, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(box, clock=clock))


def _user_exists(box: Box, name: str) -> bool:
    conn = box.require_archive().reader()
    try:
        return get_user(conn, name) is not None
    finally:
        conn.close()


# -- CSRF ---------------------------------------------------------------------------------


async def test_post_without_csrf_token_is_refused_and_does_nothing(client, box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    form = {"username": "intrus", "password": "Mot de passe 12345", "role": "admin"}
    response = await client.post("/users", data=form, allow_redirects=False)
    assert response.status == 403
    assert not _user_exists(box, "intrus")


async def test_post_with_wrong_csrf_token_is_refused_and_does_nothing(client, box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    form = {
        "username": "intrus",
        "password": "Mot de passe 12345",
        "role": "admin",
        "csrf_token": "x" * 43,
    }
    response = await client.post("/users", data=form, allow_redirects=False)
    assert response.status == 403
    assert not _user_exists(box, "intrus")


async def test_login_form_needs_csrf_too(client) -> None:
    response = await client.post(
        "/login", data={"username": "admin", "password": ADMIN_PASSWORD}, allow_redirects=False
    )
    assert response.status == 403


async def test_csrf_token_of_one_session_does_not_work_in_another(
    client, box, aiohttp_client
) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    other = await aiohttp_client(client.app)
    foreign_token = await get_csrf(other, "/login")
    form = {"username": "x1", "password": "Mot de passe 12345", "role": "admin"}
    response = await client.post(
        "/users", data={**form, "csrf_token": foreign_token}, allow_redirects=False
    )
    assert response.status == 403
    assert not _user_exists(box, "x1")


# -- roles ------------------------------------------------------------------------------------


async def test_archivist_cannot_use_admin_endpoints(client, box) -> None:
    device_id, _key = new_phone(box.require_archive())
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    token = csrf_of(await (await client.get("/archive")).text())
    create = {"username": "pirate", "password": "Mot de passe 12345", "role": "admin"}
    response = await client.post("/users", data={**create, "csrf_token": token})
    assert response.status == 403
    assert not _user_exists(box, "pirate")
    response = await client.post(f"/devices/{device_id}/revoke", data={"csrf_token": token})
    assert response.status == 403
    conn = box.require_archive().reader()
    assert [d.revoked_at for d in list_devices(conn)] == [None]
    conn.close()
    for path in ("/devices", "/users", "/dashboard", "/audit"):
        assert (await client.get(path)).status == 403, path
    assert (await client.get("/archive")).status == 200


async def test_auditor_reads_the_audit_trail_only(client) -> None:
    await login(client, "auditeur", AUDITOR_PASSWORD)
    assert (await client.get("/audit")).status == 200
    for path in ("/archive", "/exports", "/devices", "/users", "/archive/records/1"):
        assert (await client.get(path)).status == 403, path


async def test_anonymous_visitor_is_sent_to_login(client) -> None:
    response = await client.get("/archive?q=secret", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")


async def test_disabled_user_cannot_log_in_and_is_logged_out(client, box, aiohttp_client) -> None:
    archivist = await aiohttp_client(client.app)
    await login(archivist, "archiviste", ARCHIVIST_PASSWORD)
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/users")).text())
    response = await client.post("/users/archiviste/disable", data={"csrf_token": token})
    assert response.status == 200
    assert (await archivist.get("/archive", allow_redirects=False)).status == 303
    token = await get_csrf(archivist)
    response = await archivist.post(
        "/login",
        data={"username": "archiviste", "password": ARCHIVIST_PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 403


# -- login throttling, fixation, expiry --------------------------------------------------------


async def _try_login(client: Client, username: str, password: str) -> int:
    token = await get_csrf(client)
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    return response.status


async def test_failures_lock_that_account_with_a_growing_back_off(client, clock) -> None:
    for _ in range(4):
        assert await _try_login(client, "admin", "wrong passphrase!!") == 403
    assert await _try_login(client, "admin", "wrong passphrase!!") == 403  # 5th: 1 min lock
    # Locked: even the right passphrase is refused for this account from this address...
    assert await _try_login(client, "admin", ADMIN_PASSWORD) == 429
    # ...but a colleague at the same address is not locked out by someone else's typos.
    assert await _try_login(client, "auditeur", AUDITOR_PASSWORD) == 303
    clock.now += 61
    assert await _try_login(client, "admin", "wrong again!!!!!") == 403  # now 2 min
    clock.now += 61
    assert await _try_login(client, "admin", ADMIN_PASSWORD) == 429
    clock.now += 60
    assert await _try_login(client, "admin", ADMIN_PASSWORD) == 303


async def test_failed_logins_are_audited(client, box) -> None:
    await _try_login(client, "admin", "wrong passphrase!!")
    conn = box.require_archive().reader()
    events = audit_events(conn, action="login.failed")
    conn.close()
    assert [e.target for e in events] == ["admin"]


async def test_session_id_changes_at_login(client) -> None:
    await client.get("/login")
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    await login(client, "admin", ADMIN_PASSWORD)
    after = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    assert before != after
    # The planted (pre-login) id is worth nothing now.
    client.session.cookie_jar.clear()
    response = await client.get(
        "/dashboard", headers={"Cookie": f"{SESSION_COOKIE}={before}"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"].startswith("/login")


async def test_session_cookie_flags(client) -> None:
    response = await client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie


async def test_idle_session_expires(client, clock) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    clock.now += 29 * 60
    assert (await client.get("/dashboard", allow_redirects=False)).status == 200
    clock.now += 31 * 60
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login")


async def test_logout_ends_the_session(client) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/dashboard")).text())
    await client.post("/logout", data={"csrf_token": token})
    assert (await client.get("/dashboard", allow_redirects=False)).status == 303


# Each of these is "//evil.example/" (another site) to a browser's URL parser, which
# drops tabs and newlines and reads a backslash as a slash.
OFF_SITE_TARGETS = (
    "//evil.example/",
    "/\t/evil.example/",
    "/\n/evil.example/",
    "/\r\n/evil.example/",
    "/\\evil.example/",
    " //evil.example/",
    "https://evil.example/",
    "/\x00/evil.example/",
)


async def _login_then_where(client: Client, target: str) -> str:
    """Where a good login with `next=target` sends the browser."""
    token = await get_csrf(client)
    form = {"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token}
    response = await client.post("/login", data={**form, "next": target}, allow_redirects=False)
    assert response.status == 303
    return response.headers["Location"]


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
async def test_login_does_not_redirect_off_site(client, target: str) -> None:
    assert await _login_then_where(client, target) == "/dashboard"


async def test_login_follows_a_same_site_next(client) -> None:
    target = "/archive?q=contrat%20sign%C3%A9"
    assert await _login_then_where(client, target) == target


async def test_a_csrf_header_that_is_not_utf8_is_refused_not_a_server_error(client) -> None:
    """Raw bytes that are not UTF-8 in X-CSRF-Token: a 403 like any wrong token."""
    await login(client, "admin", ADMIN_PASSWORD)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE]
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /logout HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Cookie: " + f"{SESSION_COOKIE}={cookie.value}".encode() + b"\r\n"
        b"X-CSRF-Token: \xff\xfe\xfd\r\nContent-Length: 0\r\n\r\n"
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert status_line.split()[1] == b"403"
    # nothing was done: the session still works
    assert (await client.get("/dashboard", allow_redirects=False)).status == 200


# -- attachments: no path traversal -------------------------------------------------------------


async def test_attachment_download_and_path_traversal(client, box) -> None:
    archive = box.require_archive()
    device_id, key = new_phone(archive)
    note = message(key, "Voir le contrat ci-joint")
    archive.write(writes.store_record(note, device_id, "maitre.durand"))
    payload = b"%PDF-1.4 contrat " * 5000
    sha = attach_file(box, device_id, key, note, 'contrat "final"\r\n.pdf', payload)
    await login(client, "archiviste", ARCHIVIST_PASSWORD)

    response = await client.get(f"/archive/attachments/{sha}")
    assert response.status == 200
    assert await response.read() == payload
    assert response.headers["Content-Type"] == "application/octet-stream"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "\r" not in disposition and "\n" not in disposition
    assert 'filename="contrat _final_.pdf"' in disposition

    for probe in (
        "/archive/attachments/..%2F..%2Fkeystore.json",
        "/archive/attachments/../../keystore.json",
        "/archive/attachments/%2e%2e%2fkeystore.json",
        "/archive/attachments/" + "0" * 64,
        "/archive/attachments/" + sha.upper(),
        "/archive/attachments/" + sha + "/../../keystore.json",
    ):
        response = await client.get(probe, allow_redirects=False)
        body = await response.read()
        assert response.status == 404, (probe, response.status)  # not a redirect to a login
        assert b"passphrase_slot" not in body and b"salt" not in body, probe


async def test_download_is_audited(client, box) -> None:
    archive = box.require_archive()
    device_id, key = new_phone(archive)
    note = message(key, "pièce")
    archive.write(writes.store_record(note, device_id, "maitre.durand"))
    sha = attach_file(box, device_id, key, note, "a.pdf", b"data")
    await login(client, "admin", ADMIN_PASSWORD)
    await client.get(f"/archive/attachments/{sha}")
    conn = archive.reader()
    assert [e.target for e in audit_events(conn, action="archive.download")] == [sha]
    conn.close()


# -- escaping ------------------------------------------------------------------------------------

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_message_text_and_device_name_render_escaped(client, box) -> None:
    archive = box.require_archive()
    device_id, key = new_phone(archive, name=XSS, owner="maitre.durand")
    archive.write(writes.store_record(message(key, f"Bonjour {XSS}"), device_id, "maitre.durand"))
    await login(client, "admin", ADMIN_PASSWORD)
    pages = ["/devices", "/archive?q=bonjour", "/archive/records/1", f"/devices/{device_id}/revoke"]
    for path in pages:
        html = await (await client.get(path)).text()
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html, path


async def test_security_headers_on_every_page(client) -> None:
    for path in ("/login", "/does-not-exist"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_pages_have_no_inline_script(client) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    for path in ("/dashboard", "/devices", "/archive", "/audit", "/users", "/exports"):
        html = await (await client.get(path)).text()
        assert "<script>" not in html and " onclick=" not in html and "style=" not in html, path


# -- a locked box serves only the unlock page ------------------------------------------------


async def test_locked_box_serves_only_the_unlock_page(tmp_path: Path, aiohttp_client) -> None:
    ready = new_box(tmp_path / "data")
    await ready.stop()
    locked = Box(ready.config)
    client = await aiohttp_client(web_app(locked))
    for path in ("/", "/login", "/dashboard", "/archive", "/setup", "/archive/attachments/x"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/unlock", path
    page = await client.get("/unlock")
    assert page.status == 200
    token = csrf_of(await page.text())
    wrong = await client.post("/unlock", data={"passphrase": "nope nope nope", "csrf_token": token})
    assert wrong.status == 403
    assert locked.archive is None
    right = await client.post(
        "/unlock", data={"passphrase": ADMIN_PASSWORD, "csrf_token": token}, allow_redirects=False
    )
    assert right.status == 303 and right.headers["Location"] == "/login"
    assert locked.archive is not None
    assert (await client.get("/unlock", allow_redirects=False)).status == 303
    await locked.stop()


async def test_the_web_ui_keeps_answering_while_the_passphrase_is_checked(
    tmp_path: Path, aiohttp_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = new_box(tmp_path / "data")
    await ready.stop()
    locked = Box(ready.config)
    slow_kdf_started = threading.Event()
    real_keys_for = locked.keys_for

    def slow_keys_for(passphrase: str, owner: str | None = None) -> Any:
        slow_kdf_started.set()
        time.sleep(1.0)  # Argon2id on a Pi: about a second of CPU, no await inside
        return real_keys_for(passphrase, owner)

    monkeypatch.setattr(locked, "keys_for", slow_keys_for)
    client = await aiohttp_client(web_app(locked))
    token = await get_csrf(client, "/unlock")
    finished: list[str] = []

    async def unlock() -> None:
        data = {"passphrase": ADMIN_PASSWORD, "csrf_token": token}
        response = await client.post("/unlock", data=data, allow_redirects=False)
        assert response.status == 303
        finished.append("unlock")

    async def meanwhile() -> None:
        await asyncio.to_thread(slow_kdf_started.wait, 10)
        assert (await client.get("/unlock")).status == 200
        finished.append("page")

    await asyncio.gather(unlock(), meanwhile())
    assert finished == ["page", "unlock"]  # the page did not wait for the key derivation
    assert locked.archive is not None
    await locked.stop()


async def test_unlock_is_rate_limited(tmp_path: Path, aiohttp_client) -> None:
    ready = new_box(tmp_path / "data")
    await ready.stop()
    locked = Box(ready.config)
    client = await aiohttp_client(web_app(locked))
    token = await get_csrf(client, "/unlock")
    for _ in range(5):
        response = await client.post(
            "/unlock", data={"passphrase": "bad guess 123", "csrf_token": token}
        )
        assert response.status == 403
    response = await client.post(
        "/unlock", data={"passphrase": ADMIN_PASSWORD, "csrf_token": token}
    )
    assert response.status == 429
    assert locked.archive is None


async def test_unlock_names_without_a_slot_share_one_counter(
    tmp_path: Path, aiohttp_client
) -> None:
    """threat-model.md, "Malicious insider": unlock attempts naming no admin with a slot
    share one counter per address, so inventing a name for each guess buys nothing."""
    ready = new_box(tmp_path / "data")
    assert ready.keystore().claim("admin", ADMIN_PASSWORD)  # admin's slot, named
    await ready.stop()
    locked = Box(ready.config)
    client = await aiohttp_client(web_app(locked))
    token = await get_csrf(client, "/unlock")
    for n in range(5):
        form = {"username": f"invente{n}", "passphrase": "bad guess 123", "csrf_token": token}
        assert (await client.post("/unlock", data=form)).status == 403
    form = {"username": "invente9", "passphrase": ADMIN_PASSWORD, "csrf_token": token}
    assert (await client.post("/unlock", data=form)).status == 429
    assert locked.archive is None
    # The admin named with their own slot has a counter of their own at that address.
    form = {"username": "admin", "passphrase": ADMIN_PASSWORD, "csrf_token": token}
    response = await client.post("/unlock", data=form, allow_redirects=False)
    assert response.status == 303
    await locked.stop()


async def test_static_assets_are_served_without_a_session(client) -> None:
    html = await (await client.get("/login")).text()
    for name in ("style.css", "app.js"):
        url = re.search(rf'"(/static/{re.escape(name)}\?v=[^"]+)"', html).group(1)  # type: ignore[union-attr]
        response = await client.get(url)
        assert response.status == 200, name
        assert response.headers["X-Content-Type-Options"] == "nosniff"
