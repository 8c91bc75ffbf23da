"""Where the box listens, what it advertises, and which peers it lets in.

- `host = "::"` (the appliance default) listens on every IPv4 *and* IPv6
  address, as two sockets on the same port (IPv6 with IPV6_V6ONLY, so each
  family is served by its own socket whatever net.ipv6.bindv6only says).
  `host = "0.0.0.0"` is IPv4 only, and then only IPv4 addresses are
  advertised: the box never announces an address it does not serve.
  `host = "localhost"` is 127.0.0.1 and ::1 (dev, tests).
- The LAN allowlist: loopback, the private IPv4 ranges, link-local and IPv6
  ULA by default; `lan_allow` in box.toml adds networks (CGNAT 100.64.0.0/10,
  an office's public /24). The running box refuses any other peer as soon as
  the connection is accepted (logged), which also holds where systemd's
  IPAddressDeny= is not enforced (cgroup v1); the unit's IPAddressAllow= must
  list the same extra networks (docs/hardware.md shows the drop-in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_LAN = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fe80::/10",
    "fc00::/7",
)


def listen_hosts(host: str) -> list[str]:
    """The addresses to bind for box.toml's `host`, one socket each, same port."""
    if host == "::":
        return ["0.0.0.0", "::"]  # noqa: S104  (the appliance serves its LAN)
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    return [host]


def advertised_addresses(host: str, lan_addresses: Callable[[], list[str]]) -> list[str]:
    """What mDNS may publish: only addresses of a family the box listens on."""
    bound = listen_hosts(host)
    wildcards = {"0.0.0.0": 4, "::": 6}  # noqa: S104  (a comparison, not a bind)
    families = {wildcards[h] for h in bound if h in wildcards}
    if not families:
        return bound  # a specific address: publish exactly it, never loopback by accident
    return [a for a in lan_addresses() if ipaddress.ip_address(a).version in families]


def parse_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    """Networks from strings; raise ValueError naming the bad one."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {value!r} ({exc})") from None
    return tuple(networks)


class LanPolicy:
    """Which peer addresses the box serves: the default LAN plus `lan_allow`."""

    def __init__(self, extra: Sequence[str] = (), *, base: Sequence[str] = DEFAULT_LAN) -> None:
        self.networks = parse_networks([*base, *extra])

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:192.168.1.5 is the IPv4 peer 192.168.1.5
        return any(ip.version == net.version and ip in net for net in self.networks)

    def admit(self, peer: str) -> bool:
        """`allows`, and a log line for a refusal (so that it can be proved, not only set)."""
        if self.allows(peer):
            return True
        log.warning("refused a connection from %s: outside the LAN allowlist", peer)
        return False


async def listen(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    protocol_factory: Callable[[], asyncio.Protocol],
    ssl_context: ssl.SSLContext | None,
) -> tuple[list[asyncio.Server], int]:
    """Listen on every address of `host` on one port; return the servers and that port."""
    servers: list[asyncio.Server] = []
    try:
        for address in listen_hosts(host):
            server = await loop.create_server(
                protocol_factory, address, port, ssl=ssl_context, reuse_address=True, backlog=128
            )
            servers.append(server)
            # Port 0 (tests): the next family binds the port the first one got.
            port = int(server.sockets[0].getsockname()[1])
    except BaseException:
        for server in servers:
            server.close()
        raise
    return servers, port
