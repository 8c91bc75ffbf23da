"""Network and names: every advertised address is served, only LAN peers get in, and each
box is found under its own name (loopback only: 127.0.0.1 and ::1)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from e2e_helpers import prepare_data_dir, start_box, until
from strongroom.appliance.discovery import (
    PEER_SERVICE_TYPE,
    WEB_SERVICE_TYPE,
    Advertiser,
    instance_name,
    unique_host_name,
)
from strongroom.appliance.network import LanPolicy, advertised_addresses
from strongroom.box import Box
from strongroom.config import ConfigError, parse_config
from strongroom.web.settings import PRACTICE_NAME, set_setting_op
from web_helpers import ADMIN_PASSWORD

FINGERPRINT = "3841-e042-70d9-418d-2ad0-ede7-1444-e45b"


async def http_status(url: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=5)) as response,
    ):
        return response.status


def answer_of(conn: socket.socket) -> bytes:
    """What the box sent back before closing (a reset, when our request was unread: none)."""
    try:
        return conn.recv(1024)
    except ConnectionResetError:
        return b""


async def test_localhost_is_served_on_ipv4_and_ipv6_on_one_port(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config.with_overrides(host="localhost"))
    try:
        port = running.runtime.port
        assert await http_status(f"http://127.0.0.1:{port}/") in (200, 303)
        assert await http_status(f"http://[::1]:{port}/") in (200, 303)
    finally:
        await running.stop()


def test_only_addresses_of_a_served_family_are_advertised() -> None:
    def lan() -> list[str]:
        return ["192.168.1.20", "fd00::20"]

    assert advertised_addresses("::", lan) == ["192.168.1.20", "fd00::20"]
    assert advertised_addresses("0.0.0.0", lan) == ["192.168.1.20"]
    assert advertised_addresses("192.168.1.20", lan) == ["192.168.1.20"]


def test_the_default_lan_and_what_lan_allow_adds() -> None:
    lan = LanPolicy()
    for inside in ("192.168.1.5", "10.1.2.3", "172.20.0.1", "169.254.3.4", "fd12::1", "fe80::1"):
        assert lan.allows(inside), inside
    assert lan.allows("::ffff:192.168.1.5")  # an IPv4 peer on a dual-stack socket
    for outside in ("100.64.1.1", "8.8.8.8", "::ffff:8.8.8.8", "2001:db8::1", "not an ip"):
        assert not lan.allows(outside), outside
    cgnat = LanPolicy(["100.64.0.0/10", "203.0.113.0/24"])
    assert cgnat.allows("100.64.1.1") and cgnat.allows("203.0.113.9")
    assert not cgnat.allows("8.8.8.8")


def test_lan_allow_is_checked_when_box_toml_is_read(tmp_path: Path) -> None:
    config = parse_config('lan_allow = ["100.64.0.0/10"]\n', tmp_path)
    assert config.lan_allow == ("100.64.0.0/10",)
    with pytest.raises(ConfigError, match="lan_allow"):
        parse_config('lan_allow = ["100.64.0.0/33"]\n', tmp_path)
    with pytest.raises(ConfigError, match="lan_allow"):
        parse_config('lan_allow = "100.64.0.0/10"\n', tmp_path)


async def test_a_peer_outside_the_allowlist_gets_no_answer(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config)
    port = running.runtime.port
    try:
        assert await http_status(f"http://127.0.0.1:{port}/") in (200, 303)
        # An allowlist that leaves loopback out (as a LAN leaves out 8.8.8.8).
        running.runtime.lan = LanPolicy(base=())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: box\r\n\r\n")
            assert await asyncio.to_thread(answer_of, conn) == b""  # closed, not a byte sent
    finally:
        await running.stop()


def test_names_are_unique_per_box_and_carry_the_practice() -> None:
    assert unique_host_name("strongroom", FINGERPRINT) == "strongroom-3841"
    assert unique_host_name("strongroom", None) == "strongroom"
    assert instance_name("Cabinet Martin", "strongroom-3841") == "Cabinet Martin (strongroom-3841)"
    assert instance_name(None, "strongroom-3841") == "strongroom-3841"
    long = instance_name("Société civile professionnelle " * 4, "strongroom-3841")
    assert len(long.encode()) <= 63 and long.endswith(" (strongroom-3841)")


@pytest.fixture
async def browser() -> AsyncIterator[AsyncZeroconf]:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    yield zc
    await zc.async_close()


async def resolve(zc: AsyncZeroconf, service_type: str, name: str) -> AsyncServiceInfo | None:
    info = AsyncServiceInfo(service_type, name)
    return info if await info.async_request(zc.zeroconf, 3000) else None


async def test_no_identity_yet_publishes_the_web_ui_without_a_fingerprint(
    browser: AsyncZeroconf,
) -> None:
    name = f"strongroom-test-{uuid.uuid4().hex[:8]}"
    advertiser = Advertiser(
        port=8443, fingerprint=None, addresses=["127.0.0.1"], name=name, interfaces=["127.0.0.1"]
    )
    try:
        await asyncio.wait_for(advertiser.start(), 10)
        assert advertiser.service_names == [f"{name}.{WEB_SERVICE_TYPE}"]
        web = await resolve(browser, WEB_SERVICE_TYPE, f"{name}.{WEB_SERVICE_TYPE}")
        assert web is not None and b"fp" not in web.properties
        assert await resolve(browser, PEER_SERVICE_TYPE, f"{name}.{PEER_SERVICE_TYPE}") is None
        # The wizard made an identity: both services, under the unique host name.
        host = unique_host_name(name, FINGERPRINT)
        assert await advertiser.republish(fingerprint=FINGERPRINT, name=name, host_name=host)
        peer = await resolve(browser, PEER_SERVICE_TYPE, f"{name}.{PEER_SERVICE_TYPE}")
        assert peer is not None and peer.properties[b"fp"] == FINGERPRINT.encode()
        assert peer.server == f"{host}.local."
    finally:
        await advertiser.stop()


async def test_the_running_box_is_found_under_its_own_name_and_practice(
    tmp_path: Path, browser: AsyncZeroconf
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    practice = f"Cabinet Martin {uuid.uuid4().hex[:6]}"  # unique: parallel runs share lo
    box = Box(config)
    box.unlock(ADMIN_PASSWORD)
    box.require_archive().write(set_setting_op(PRACTICE_NAME, practice))
    fingerprint = box.fingerprint
    await box.stop()
    mdns = config.with_overrides(advertise_mdns=True, mdns_interfaces=("127.0.0.1",))
    running = await start_box(mdns, unlock=False)
    try:
        announcer = running.runtime.announcer
        assert announcer is not None
        host = unique_host_name("strongroom", fingerprint)
        assert announcer.host_name == host and host != "strongroom"
        running.box.unlock(ADMIN_PASSWORD)  # the practice name becomes readable
        instance = f"{practice} ({host})"
        await until(
            lambda: f"{instance}.{PEER_SERVICE_TYPE}" in announcer.advertiser.service_names,
            what="the practice's instance name",
        )
        peer = await resolve(browser, PEER_SERVICE_TYPE, f"{instance}.{PEER_SERVICE_TYPE}")
        assert peer is not None and peer.server == f"{host}.local."
        assert peer.port == running.runtime.port
    finally:
        await running.stop()
