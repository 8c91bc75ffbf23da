"""mDNS advertisement discovered by a second zeroconf instance, over loopback multicast.

Both instances bind to 127.0.0.1 only. This works even when `lo` lacks the
MULTICAST flag (as in many containers): zeroconf sets IP_MULTICAST_IF to the
interface address and IP_MULTICAST_LOOP, so the kernel hands every datagram
back to the local listeners without it ever reaching a wire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import ifaddr
import pytest
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from strongroom import PROTOCOL_VERSION
from strongroom.appliance.discovery import (
    PEER_SERVICE_TYPE,
    WEB_SERVICE_TYPE,
    Advertiser,
    AdvertiserStateError,
    lan_addresses,
)

LOOPBACK = ["127.0.0.1"]
FINGERPRINT = "sr1-3f9a-77c2-0be1"


@pytest.fixture
async def browser_zc() -> AsyncIterator[AsyncZeroconf]:
    zc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    yield zc
    await zc.async_close()


class Sightings:
    """Collects what a browser saw for one instance name."""

    def __init__(self, instance: str) -> None:
        self.instance = instance
        self.added = asyncio.Event()
        self.removed = asyncio.Event()

    def handler(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name != self.instance:
            return  # another test run on this machine
        if state_change is ServiceStateChange.Added:
            self.added.set()
        elif state_change is ServiceStateChange.Removed:
            self.removed.set()


async def _resolve(zc: AsyncZeroconf, service_type: str, instance: str) -> AsyncServiceInfo:
    info = AsyncServiceInfo(service_type, instance)
    assert await info.async_request(zc.zeroconf, 3000), f"{instance} did not resolve"
    return info


async def test_box_is_discovered_then_says_goodbye(browser_zc: AsyncZeroconf) -> None:
    name = f"strongroom-test-{uuid.uuid4().hex[:8]}"  # unique: parallel runs share lo
    advertiser = Advertiser(
        port=8443,
        fingerprint=FINGERPRINT,
        addresses=["127.0.0.1"],
        name=name,
        interfaces=LOOPBACK,
    )
    peer_instance = f"{name}.{PEER_SERVICE_TYPE}"
    sightings = Sightings(peer_instance)
    browser = AsyncServiceBrowser(
        browser_zc.zeroconf, PEER_SERVICE_TYPE, handlers=[sightings.handler]
    )
    try:
        await asyncio.wait_for(advertiser.start(), 10)
        assert advertiser.service_names == [peer_instance, f"{name}.{WEB_SERVICE_TYPE}"]
        await asyncio.wait_for(sightings.added.wait(), 10)

        peer = await _resolve(browser_zc, PEER_SERVICE_TYPE, peer_instance)
        assert peer.port == 8443
        assert peer.server == f"{name}.local."
        assert peer.properties == {
            b"pv": str(PROTOCOL_VERSION).encode(),
            b"fp": FINGERPRINT.encode(),
            b"path": b"/peer",
        }
        assert peer.parsed_addresses() == ["127.0.0.1"]

        web = await _resolve(browser_zc, WEB_SERVICE_TYPE, f"{name}.{WEB_SERVICE_TYPE}")
        assert web.port == 8443
        assert web.properties[b"path"] == b"/"

        # A new DHCP lease: re-announced, and the browser's view follows.
        assert await advertiser.update_addresses(["127.0.0.1", "127.0.0.2"])
        assert not await advertiser.update_addresses(["127.0.0.2", "127.0.0.1"])

        async def addresses_seen() -> list[str]:
            while True:
                info = await _resolve(browser_zc, PEER_SERVICE_TYPE, peer_instance)
                if len(info.parsed_addresses()) == 2:
                    return sorted(info.parsed_addresses())
                await asyncio.sleep(0.1)

        assert await asyncio.wait_for(addresses_seen(), 10) == ["127.0.0.1", "127.0.0.2"]

        await asyncio.wait_for(advertiser.stop(), 10)
        await asyncio.wait_for(sightings.removed.wait(), 10)  # the goodbye arrived
        gone = AsyncServiceInfo(PEER_SERVICE_TYPE, peer_instance)
        assert not await gone.async_request(browser_zc.zeroconf, 500)
    finally:
        await browser.async_cancel()
        await advertiser.stop()


async def test_calls_in_the_wrong_order_are_refused() -> None:
    advertiser = Advertiser(port=443, fingerprint="x", addresses=["127.0.0.1"])
    with pytest.raises(AdvertiserStateError):
        await advertiser.update_addresses(["127.0.0.1"])
    await advertiser.stop()  # never started: nothing to do


def test_nonsense_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Advertiser(port=0, fingerprint="x", addresses=["127.0.0.1"])
    with pytest.raises(ValueError):
        Advertiser(port=443, fingerprint="x", addresses=["strongroom.local"])


def test_lan_addresses_leave_out_loopback_and_scopeless_link_local() -> None:
    def adapter(name: str, *ips: str | tuple[str, int, int]) -> ifaddr.Adapter:
        return ifaddr.Adapter(name, name, [ifaddr.IP(ip, 64, name) for ip in ips])

    adapters = [
        adapter("lo", "127.0.0.1", ("::1", 0, 0)),
        adapter("eth0", "192.168.1.20", ("fd00::20", 0, 0), ("fe80::1", 0, 2)),
        adapter("wlan0", "10.0.0.7"),
    ]
    assert lan_addresses(adapters) == ["10.0.0.7", "192.168.1.20", "fd00::20"]
    assert all(isinstance(a, str) for a in lan_addresses())  # the real machine's
