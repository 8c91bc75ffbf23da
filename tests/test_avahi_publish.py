"""mDNS through avahi-daemon: the box hands its records to the system's daemon.

Real parts: two network namespaces joined by a veth pair, each with its own
D-Bus bus (dbus-daemon on a socket under tmp) and its own avahi-daemon. The
box publishes through the daemon of namespace A (`AvahiAdvertiser`, D-Bus);
`avahi-browse` in namespace B must find it over the veth under its unique host
name, with its TXT keys and address. Without avahi on the bus the box chooses
its own zeroconf responder; forcing avahi then is a clear error.

Needs root (namespaces; CI runs as root) and the Debian packages avahi-daemon,
avahi-utils, dbus and iproute2 (scripts/ensure-system-deps.sh installs them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.appliance.announce import choose_publisher
from strongroom.appliance.avahi import AvahiAdvertiser, AvahiError, avahi_running, txt_array
from strongroom.appliance.discovery import service_records
from support.avahi import Side, browse, sh, start_avahi, start_bus

A_ADDR, B_ADDR = "10.231.9.1", "10.231.9.2"
FP = "3841-e042-77aa-0c19"


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[Side, Side]]:
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (CI runs as root)")
    for tool in ("ip", "dbus-daemon", "avahi-daemon", "avahi-browse"):
        assert shutil.which(tool), f"missing {tool} (scripts/ensure-system-deps.sh installs it)"
    tag = str(os.getpid())[-6:]
    a = Side(f"sravA{tag}", f"va{tag}", "", [])
    b = Side(f"sravB{tag}", f"vb{tag}", "", [])
    try:
        sh("ip", "netns", "add", a.ns, check=True)
        sh("ip", "netns", "add", b.ns, check=True)
        sh("ip", "link", "add", a.link, "type", "veth", "peer", "name", b.link, check=True)
        for side, addr in ((a, A_ADDR), (b, B_ADDR)):
            sh("ip", "link", "set", side.link, "netns", side.ns, check=True)
            run = ("ip", "netns", "exec", side.ns)
            sh(*run, "ip", "link", "set", "lo", "up", check=True)
            sh(*run, "ip", "addr", "add", f"{addr}/24", "dev", side.link, check=True)
            sh(*run, "ip", "link", "set", side.link, "multicast", "on", "up", check=True)
        for side, name in ((a, "a"), (b, "b")):
            side.bus, proc = start_bus(tmp_path, name)
            side.procs.append(proc)
        yield a, b
    finally:
        for side in (a, b):
            side.stop()
        sh("ip", "netns", "del", a.ns)
        sh("ip", "netns", "del", b.ns)


def test_the_box_is_found_from_another_namespace_through_avahi(
    lan: tuple[Side, Side], tmp_path: Path
) -> None:
    a, b = lan
    start_avahi(tmp_path, a, "office-pi")
    start_avahi(tmp_path, b, "laptop")
    assert asyncio.run(choose_publisher("auto", a.bus)) == "avahi"
    # Interfaces pinned in box.toml (mdns_interfaces): avahi cannot honour them.
    assert asyncio.run(choose_publisher("auto", a.bus, interfaces_pinned=True)) == "zeroconf"

    async def publish_then_rename() -> list[str]:
        advertiser = AvahiAdvertiser(
            port=443,
            fingerprint=FP,
            addresses=[A_ADDR],
            name="Cabinet Martin (strongroom-3841)",
            host_name="strongroom-3841",
            tls_key_fingerprint="ab" * 32,
            bus=a.bus,
        )
        await advertiser.start()
        try:
            assert advertiser.state == 2 or await advertiser.check() in (1, 2)
            peer = await asyncio.to_thread(
                browse, b, "_strongroom._tcp", "Cabinet Martin (strongroom-3841)"
            )
            # A new practice name: the old instance goes, the new one comes.
            await advertiser.republish(
                fingerprint=FP, name="Cabinet Durand (strongroom-3841)", host_name="strongroom-3841"
            )
            renamed = await asyncio.to_thread(browse, b, "_https._tcp", "Cabinet Durand")
            return peer + renamed
        finally:
            await advertiser.stop()

    peer_line, web_line = asyncio.run(publish_then_rename())
    # =;iface;IPv4;name;type;domain;host;address;port;txt
    fields = peer_line.split(";")
    assert fields[6:9] == ["strongroom-3841.local", A_ADDR, "443"], peer_line
    assert f'"fp={FP}"' in fields[9] and '"path=/peer"' in fields[9], peer_line
    assert f'"tls={"ab" * 32}"' in fields[9], peer_line
    web = web_line.split(";")
    assert web[6:9] == ["strongroom-3841.local", A_ADDR, "443"], web_line
    assert '"path=/"' in web[9], web_line
    # Stopped: the records are withdrawn (avahi sends the goodbyes).
    time.sleep(1.0)
    assert browse(b, "_strongroom._tcp", "strongroom-3841", timeout=3) == []


def test_without_avahi_on_the_bus_the_box_runs_its_own_responder(
    lan: tuple[Side, Side],
) -> None:
    a, _ = lan  # a bus, but no avahi-daemon on it
    assert asyncio.run(avahi_running(a.bus)) is False
    assert asyncio.run(choose_publisher("auto", a.bus)) == "zeroconf"
    assert asyncio.run(choose_publisher("zeroconf", a.bus)) == "zeroconf"
    with pytest.raises(AvahiError, match="avahi-daemon is not running"):
        asyncio.run(choose_publisher("avahi", a.bus))
    # No system bus at all (a minimal image): zeroconf, not a crash.
    assert asyncio.run(choose_publisher("auto", "unix:path=/nonexistent/bus")) == "zeroconf"


def test_avahi_gets_the_same_records_as_zeroconf() -> None:
    """The TXT avahi receives is the documented one; no `fp` before an identity exists."""
    records = dict(service_records(FP, "cd" * 32, 1))
    assert txt_array(records["_strongroom._tcp.local."]) == [
        f"fp={FP}".encode(),
        b"path=/peer",
        b"pv=1",
        f"tls={'cd' * 32}".encode(),
    ]
    first_run = service_records(None, None, 1)
    assert [t for t, _ in first_run] == ["_https._tcp.local."]
    assert txt_array(first_run[0][1]) == [b"path=/"]
