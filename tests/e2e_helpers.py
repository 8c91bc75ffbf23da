"""The whole box running on loopback, for end-to-end tests.

A real `BoxRuntime` (web UI, /peer, control socket, pairing service, front panel
on gpiozero MockFactory pins), a real SQLCipher archive in a tmp data dir, real
phones (`strongroom.client.PhoneClient`) and an admin driving the real web UI
over HTTP (login, CSRF, forms). Time that matters (pairing window, QR expiry)
comes from an injectable `Clock` that follows real time and can jump ahead.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from gpiozero.pins.mock import MockFactory, MockPWMPin

from strongroom.box import Box
from strongroom.client import DeviceState, Paired, PhoneClient
from strongroom.config import BoxConfig
from strongroom.identity import Keystore, new_entropy
from strongroom.pairing.service import PairingService
from strongroom.reach.service import BoxReach
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom.web.users import create_user
from strongroom_panel.pins import PanelPins
from strongroom_panel.state import BoxState
from support.clock import Clock as Clock  # Clock(): real time a test can push forward
from support.records import message_fields
from support.wait import until as until  # LED lines and the tick loop signal nothing
from web_helpers import ADMIN_PASSWORD, CHEAP_HASHER, CHEAP_LIMITS, csrf_of

PINS = PanelPins()  # the defaults of firmware/panel.toml
LED_PINS = {"status": PINS.status, "pairing": PINS.pairing, "alert": PINS.alert}
# Longer than the panel's contact-bounce filter (50 ms on its monotonic clock).
PRESS_S = 0.08


async def prepare_data_dir(data_dir: Path, *, keyfile: Path | None = None) -> BoxConfig:
    """A box identity (cheap Argon2id), an admin account, and nothing running.

    With `keyfile`, the config unlocks unattended with it (as a dev box does).
    """
    config = BoxConfig(data_dir=data_dir, port=0)
    if keyfile is not None:
        config = config.with_overrides(unlock_mode="unattended", unlock_keyfile=keyfile)
    entropy = new_entropy()
    box = Box(config)
    box.initialise(entropy, ADMIN_PASSWORD, **CHEAP_LIMITS)
    create_user(box, "admin", ADMIN_PASSWORD, "admin", hasher=CHEAP_HASHER)
    if keyfile is not None:
        Keystore(config.keystore_path).add_keyfile_slot(entropy, keyfile)
    await box.stop()
    return config


@dataclass
class E2EBox:
    """A running box and the mock pins of its front panel."""

    runtime: BoxRuntime
    factory: MockFactory
    clock: Clock

    @property
    def box(self) -> Box:
        return self.runtime.box

    @property
    def pairing(self) -> PairingService:
        """The runtime's pairing service (the box's own `pairing` may be None)."""
        return self.runtime.pairing

    @property
    def reach(self) -> BoxReach:
        """The runtime's remote reach (built at start, off until turned on)."""
        reach = self.box.reach
        assert reach is not None, "the runtime builds the box's reach at start"
        return reach

    @property
    def url(self) -> str:
        return self.runtime.url

    @property
    def peer_url(self) -> str:
        return f"ws://{self.runtime.config.host}:{self.runtime.port}/peer"

    @property
    def fingerprint(self) -> str:
        fingerprint = self.box.fingerprint
        assert fingerprint is not None
        return fingerprint

    @property
    def data_dir(self) -> Path:
        return self.runtime.config.data_dir

    def panel_state(self) -> BoxState | None:
        """What the front panel shows now (a call: the LEDs change under our feet)."""
        panel = self.runtime.panel
        assert panel is not None, "the front panel did not open"
        return panel.state

    def phase(self) -> BoxPhase:
        return self.box.phase

    async def press_button(self) -> None:
        """A person pressing PAIR: the button line goes low, then high again."""
        pin = self.factory.pin(PINS.button)
        pin.drive_low()
        await asyncio.sleep(PRESS_S)
        pin.drive_high()

    def led(self, role: str) -> MockPWMPin:
        pin = self.factory.pin(LED_PINS[role])
        assert isinstance(pin, MockPWMPin)
        return pin

    async def led_blinks(self, role: str) -> None:
        """The LED goes lit, dark, lit again on its own: it blinks."""
        pin = self.led(role)
        for level in (1.0, 0.0, 1.0):
            await until(lambda: pin.state == level, what=f"{role} LED at {level}")

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = self.box.require_archive().reader()
        try:
            return [tuple(row) for row in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()

    def count(self, sql: str, *args: Any) -> int:
        return int(self.query(sql, *args)[0][0])

    def audit_actions(self, prefix: str = "") -> list[str]:
        rows = self.query(
            "SELECT action FROM audit_events WHERE action LIKE ? ORDER BY id", prefix + "%"
        )
        return [str(row[0]) for row in rows]

    async def stop(self) -> None:
        await self.runtime.stop()
        self.factory.reset()


async def start_box(
    config: BoxConfig, *, clock: Clock | None = None, unlock: bool = True
) -> E2EBox:
    """Start a BoxRuntime on 127.0.0.1 (free port) with mock pins; unlock it unless told not."""
    clock = clock or Clock()
    factory = MockFactory(pin_class=MockPWMPin)
    runtime = BoxRuntime(config, clock=clock, pin_factory=factory)
    await runtime.start()
    running = E2EBox(runtime, factory, clock)
    if unlock and runtime.box.phase.value == "locked":
        runtime.box.unlock(ADMIN_PASSWORD)
    return running


_TICKET = re.compile(r'name="ticket" value="([^"]+)"')


@dataclass
class WebAdmin:
    """An administrator in a browser: cookies, CSRF tokens, forms (English pages)."""

    base_url: str
    http: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        # unsafe=True: the cookie jar must accept cookies from an IP address (127.0.0.1).
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "en"}
        )

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base_url + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def post_form(
        self, path: str, data: Mapping[str, str], *, form_page: str | None = None
    ) -> tuple[int, str, str | None]:
        """POST `data` plus the CSRF token read from `form_page` (default: `path`).

        Returns (status, body, Location) without following the redirect."""
        status, page = await self.get(form_page or path)
        assert status == 200, f"GET {form_page or path} -> {status}"
        form = {**data, "csrf_token": csrf_of(page)}
        async with self.http.post(
            self.base_url + path, data=form, allow_redirects=False
        ) as response:
            return response.status, await response.text(), response.headers.get("Location")

    async def login(self, username: str = "admin", password: str = ADMIN_PASSWORD) -> None:
        status, _, location = await self.post_form(
            "/login", {"username": username, "password": password}
        )
        assert status == 303, f"login refused ({status})"
        assert location is not None and "/login" not in location

    async def confirm_pending_pairing(self) -> str:
        """Click "Confirm" on the devices page; returns the comparison code it showed."""
        status, page = await self.get("/devices")
        assert status == 200
        ticket = _TICKET.search(page)
        assert ticket, "no pending pairing on the devices page"
        code = re.search(r'id="comparison-code">([^<]+)<', page)
        assert code, "the devices page shows no comparison code"
        status, _, location = await self.post_form(
            "/devices/pair/confirm", {"ticket": ticket.group(1)}, form_page="/devices"
        )
        assert status == 303 and location is not None and location.startswith("/devices")
        return code.group(1).strip()


async def running_e2e_box(tmp_path: Path) -> AsyncIterator[E2EBox]:
    """For a fixture, `running = pytest.fixture(running_e2e_box)`: a started, unlocked box."""
    box = await start_box(await prepare_data_dir(tmp_path / "box"), clock=Clock())
    yield box
    await box.stop()


async def logged_in_admin(running: E2EBox) -> AsyncIterator[WebAdmin]:
    """For a fixture, `admin = pytest.fixture(logged_in_admin)`: the admin, logged in."""
    admin = WebAdmin(running.url)
    await admin.login()
    yield admin
    await admin.close()


async def admin_page(running: E2EBox, path: str, language: str = "en") -> str:
    """`path` as an administrator reads it in `language` (logged in afresh, 200 expected)."""
    admin = WebAdmin(running.url)
    admin.http.headers["Accept-Language"] = language
    try:
        await admin.login()
        status, page = await admin.get(path)
        assert status == 200, f"GET {path} -> {status}"
        return page
    finally:
        await admin.close()


def new_phone(name: str, owner: str) -> PhoneClient:
    return PhoneClient(DeviceState.generate(name, owner), keepalive=False)


async def pair_by_button(
    running: E2EBox, admin: WebAdmin, name: str, owner: str
) -> tuple[PhoneClient, Paired]:
    """PAIR pressed on the panel, the phone asks, the admin compares and confirms in the UI."""
    await running.press_button()
    await until(lambda: running.pairing.status().open, what="the pairing window")
    phone = new_phone(name, owner)
    attempt = asyncio.create_task(phone.pair_button(running.peer_url, running.fingerprint))
    await until(lambda: running.pairing.status().pending is not None, what="a pending pairing")
    await admin.confirm_pending_pairing()
    paired = await asyncio.wait_for(attempt, 10)
    return phone, paired


def message(text: str, *, conv: str, sender: str, n: int, direction: str = "out") -> dict[str, Any]:
    return message_fields(text, conv=conv, sender=sender, n=n, direction=direction)


async def pair_by_qr(running: E2EBox, name: str, owner: str) -> tuple[PhoneClient, Paired]:
    """A phone paired with a fresh QR offer (the path that needs no confirmation)."""
    offer = running.pairing.issue_qr("127.0.0.1", running.runtime.port, running.fingerprint)
    phone = new_phone(name, owner)
    return phone, await phone.pair_qr(running.peer_url, offer.uri)


def attachment(message_fields: Mapping[str, Any], data: bytes, name: str) -> dict[str, Any]:
    """The attachment record of a file sent with `message_fields` (upload the bytes first)."""
    fields = {k: v for k, v in message_fields.items() if k != "text"}
    fields.update(
        id=f"a-{message_fields['id']}",
        kind="attachment",
        ref=message_fields["id"],
        at=int(message_fields["at"]) + 1,
        blob={
            "sha256": hashlib.sha256(data).digest(),
            "size": len(data),
            "name": name,
            "mime": "application/pdf",
        },
    )
    return fields
