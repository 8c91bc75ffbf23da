"""No egress: the box, in a network namespace of its own, opens no connection beyond its LAN peer.

Two namespaces joined by a veth pair: the box's (loopback + veth, no default
route) and a test peer's. An nftables OUTPUT chain in the box's namespace
accepts loopback and packets to the peer and counts (and drops) everything
else. A whole scenario then runs from the peer side (pairing and pushes over
Noise, web login, search, a sealed export downloaded, a backup to a local
directory) and the counter must still be 0. A positive control proves the
counter counts, and a connection to a public address must fail outright.

Needs root (CI runs as root) and the Debian packages iproute2 and nftables.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fault_helpers import BoxProcess

TESTS = Path(__file__).resolve().parent
BOX_ADDR, PEER_ADDR, STRANGER_ADDR = "10.231.7.1", "10.231.7.2", "10.231.7.5"


@dataclass(frozen=True)
class Namespaces:
    box: str
    peer: str

    def run_in(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *args], capture_output=True, text=True, check=check
        )

    def dropped_packets(self) -> int:
        """The counter of the catch-all drop rule in the box's OUTPUT chain."""
        listing = self.run_in(self.box, "nft", "-j", "list", "chain", "inet", "egress", "output")
        for item in json.loads(listing.stdout)["nftables"]:
            rule = item.get("rule")
            if rule and rule.get("comment") == "egress":
                for expr in rule["expr"]:
                    if "counter" in expr:
                        return int(expr["counter"]["packets"])
        raise AssertionError("the egress counter rule is missing")


def _sh(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True)


@pytest.fixture
def namespaces() -> Iterator[Namespaces]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs as root)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        assert shutil.which(tool), f"missing Debian package {package} (make test installs it)"
    tag = str(os.getpid())[-6:]
    ns = Namespaces(f"srbox{tag}", f"srpeer{tag}")
    made = _sh("ip", "netns", "add", ns.box)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    try:
        veth_box, veth_peer = f"vb{tag}", f"vp{tag}"
        setup = [
            ["ip", "netns", "add", ns.peer],
            ["ip", "link", "add", veth_box, "type", "veth", "peer", "name", veth_peer],
            ["ip", "link", "set", veth_box, "netns", ns.box],
            ["ip", "link", "set", veth_peer, "netns", ns.peer],
        ]
        for args in setup:
            subprocess.run(args, check=True, capture_output=True)
        for name, link, addr in ((ns.box, veth_box, BOX_ADDR), (ns.peer, veth_peer, PEER_ADDR)):
            # No IPv6: the kernel's own router solicitations would be counted as egress.
            ns.run_in(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ns.run_in(name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            ns.run_in(name, "ip", "link", "set", "lo", "up")
            ns.run_in(name, "ip", "addr", "add", f"{addr}/29", "dev", link)
            ns.run_in(name, "ip", "link", "set", link, "up")
        ruleset = (
            "table inet egress {\n"
            " chain output {\n"
            "  type filter hook output priority 0; policy accept;\n"
            '  oifname "lo" accept\n'
            f'  oifname "{veth_box}" ip daddr {PEER_ADDR} accept\n'
            '  log prefix "strongroom-egress " counter drop comment "egress"\n'
            " }\n"
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", ns.box, "nft", "-f", "-"],
            input=ruleset,
            text=True,
            check=True,
            capture_output=True,
        )
        yield ns
    finally:
        _sh("ip", "netns", "del", ns.peer)
        _sh("ip", "netns", "del", ns.box)


PEER_SCENARIO = """
import asyncio, json, sys
sys.path.insert(0, {tests!r})
from fault_helpers import message, web_login, csrf_of
from strongroom.client import DeviceState, PhoneClient

async def main(info, data_dir):
    phone = PhoneClient(DeviceState.generate("Pixel de Claire", "claire"))
    await phone.pair_button(info["peer"], info["fingerprint"])
    await phone.push_many([message(i, f"dossier Lefèvre {{i}}") for i in range(20)])
    await phone.upload_attachment(b"%PDF-1.4 scan" * 1000)
    await phone.close()
    await phone.connect(info["peer"])  # Noise IK reconnect
    await phone.push(message(99, "après reconnexion"))
    await phone.close()
    url = info["url"]
    async with await web_login(url, data_dir) as web:
        page = await (await web.get(f"{{url}}/archive", params={{"q": "lefevre"}})).text()
        assert "dossier Lef" in page, "search found nothing"
        page = await (await web.get(f"{{url}}/exports")).text()
        found = await web.get(
            f"{{url}}/office/search", params={{"kind": "person", "q": "cla"}},
            headers={{"X-CSRF-Token": csrf_of(page)}},
        )
        person = (await found.json())["results"][0]["value"]
        response = await web.post(
            f"{{url}}/exports",
            data={{"csrf_token": csrf_of(page), "kind": "person", "person": person,
                  "recipient": "Tribunal", "reason": "no-egress test"}},
            allow_redirects=False,
        )
        job = response.headers["Location"].rstrip("/").split("/")[-1]
        for _ in range(200):
            state = await (await web.get(f"{{url}}/jobs/{{job}}/status")).json()
            if state["state"] != "running":
                break
            await asyncio.sleep(0.1)
        bundle = await (await web.get(f"{{url}}/jobs/{{job}}/download")).read()
        assert bundle[:2] == b"PK", state
    print(json.dumps({{"bundle_bytes": len(bundle)}}))

asyncio.run(main(json.loads(sys.argv[1]), __import__("pathlib").Path(sys.argv[2])))
"""


async def test_the_box_opens_no_connection_beyond_its_lan_peer(
    namespaces: Namespaces, tmp_path: Path
) -> None:
    data_dir = tmp_path / "box"
    backups = tmp_path / "backups"
    backups.mkdir()
    box = BoxProcess(
        data_dir,
        host=BOX_ADDR,
        prefix=("ip", "netns", "exec", namespaces.box),
        extra_args=("--backup-target", str(backups)),
    )
    await box.start()
    try:
        scenario = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", namespaces.peer, sys.executable, "-c",
            PEER_SCENARIO.format(tests=str(TESTS)), json.dumps(box.info), str(data_dir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(scenario.communicate(), 60)
        assert scenario.returncode == 0, err.decode()[-3000:]
        assert json.loads(out)["bundle_bytes"] > 0
        # The nightly backup, run as the timer would, inside the box's namespace.
        backup = await asyncio.to_thread(
            namespaces.run_in,
            namespaces.box,
            sys.executable, "-m", "strongroom", "backup", "--data", str(data_dir),
            "--target", str(backups),
            check=False,
        )  # fmt: skip
        assert backup.returncode == 0, backup.stderr
        assert any(backups.iterdir()), "no backup set written"
        assert namespaces.dropped_packets() == 0, "the box sent packets beyond its LAN peer"
    finally:
        await box.stop()
    assert namespaces.dropped_packets() == 0

    # The counter counts: a datagram to another LAN address is caught and dropped.
    namespaces.run_in(
        namespaces.box,
        sys.executable, "-c",
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
        f"s.sendto(b'x', ({STRANGER_ADDR!r}, 9))",
        check=False,
    )  # fmt: skip
    assert namespaces.dropped_packets() >= 1
    # And the internet is unreachable from the box's namespace: no route at all.
    attempt = namespaces.run_in(
        namespaces.box,
        sys.executable, "-c",
        "import socket; socket.create_connection(('9.9.9.9', 443), timeout=3)",
        check=False,
    )  # fmt: skip
    assert attempt.returncode != 0
    assert re.search(r"Network is unreachable|No route to host", attempt.stderr), attempt.stderr
