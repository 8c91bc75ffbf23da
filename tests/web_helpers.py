"""Shared by the web UI tests: a real Box on a tmp data dir, cheap Argon2id, form helpers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import nacl.pwhash
from aiohttp import web
from aiohttp.test_utils import TestClient
from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.record import Record
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.identity import new_entropy
from strongroom.unlock import BoxPhase
from strongroom.web.app import build_web_app
from strongroom.web.users import PasswordHasher, create_user
from support.argon import ArgonLimits
from support.box import upload_blob
from support.records import attachment_fields, signed

# The cheapest Argon2id libsodium accepts: the tests exercise logic, not cost.
CHEAP_LIMITS: ArgonLimits = {
    "opslimit": nacl.pwhash.argon2id.OPSLIMIT_MIN,
    "memlimit": nacl.pwhash.argon2id.MEMLIMIT_MIN,
}
CHEAP_HASHER = PasswordHasher(**CHEAP_LIMITS)
ADMIN_PASSWORD = "Correct horse 42 battery"
ARCHIVIST_PASSWORD = "Archives du cabinet 2024"
AUDITOR_PASSWORD = "Auditeur externe 2024!"


def new_box(data_dir: Path, *, ready: bool = True, clock: Callable[[], float] = time.time) -> Box:
    box = Box(BoxConfig(data_dir=data_dir), clock=clock)
    if ready:
        box.initialise(new_entropy(), ADMIN_PASSWORD, **CHEAP_LIMITS)
        create_user(box, "admin", ADMIN_PASSWORD, "admin", hasher=CHEAP_HASHER)
        create_user(box, "archiviste", ARCHIVIST_PASSWORD, "archivist", hasher=CHEAP_HASHER)
        create_user(box, "auditeur", AUDITOR_PASSWORD, "auditor", hasher=CHEAP_HASHER)
    return box


def phase_of(box: Box) -> BoxPhase:
    """The box's phase, read afresh: after unlock() or a restore job the phase has moved,
    which a type checker that narrowed `box.phase` on an earlier assert cannot know."""
    return box.phase


def web_app(box: Box, **kwargs: object) -> web.Application:
    return build_web_app(
        box,
        hasher=CHEAP_HASHER,
        keystore_limits={
            "opslimit": CHEAP_LIMITS["opslimit"],
            "memlimit": CHEAP_LIMITS["memlimit"],
        },
        **kwargs,  # type: ignore[arg-type]
    )


Client = TestClient[web.Request, web.Application]  # the aiohttp test client of the web app
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def get_csrf(client: Client, path: str = "/login") -> str:
    response = await client.get(path)
    return csrf_of(await response.text())


async def login(client: Client, username: str, password: str) -> None:
    token = await get_csrf(client, "/login")
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()


async def another_browser(client: Client) -> Client:
    """A second person on the same running web app (its own cookies); close it yourself."""
    other: Client = TestClient(client.server)  # type: ignore[assignment]
    await other.start_server()
    return other


def attach_file(
    box: Box, device_id: int, key: SigningKey, message: Record, name: str, data: bytes
) -> str:
    """Upload an encrypted blob and attach it to `message`, as a phone would; return its sha hex."""
    archive = box.require_archive()
    sha, _ = upload_blob(archive, data)
    fields = attachment_fields(
        message.client_id,
        sha,
        len(data),
        name=name,
        conv=message.conversation,
        at=message.sent_at + 1,
        id=f"a-{message.client_id}",
    )
    record = signed(key, fields)
    archive.write(writes.store_record(record, device_id, "maitre.durand"))
    return sha.hex()
