"""Announce the box on the LAN by mDNS/DNS-SD (zeroconf's asyncio API).

When avahi-daemon runs, the same records go through it instead
(`strongroom.appliance.avahi`); this module is the fallback responder.

Two services point at the same host `<host>.local.` and port:
- `_strongroom._tcp.local.` for phones: TXT `pv` (protocol version), `fp` (the
  box's key fingerprint, so a phone can tell its own box from a look-alike
  before the Noise handshake proves it), `path` (the WebSocket endpoint, /peer).
- `_https._tcp.local.` for people: the web UI. Its TXT `path` is "/" because
  generic DNS-SD browsers build the URL to open from it; it also carries `fp`.
Both carry `tls` when TLS is on: the SHA-256 of the HTTPS key's SubjectPublicKeyInfo
(web/tls_key.py), the fingerprint the page footer and the recovery sheet show, which
stays the same when the certificate is issued again (the certificate's own would not).

The host name is unique per box (`strongroom-3841.local`, from its key
fingerprint): two boxes on one LAN no longer both claim `strongroom.local`.
The instance name is what a browser lists: the practice's name and the host
name. A box without an identity yet (first run) publishes only the web UI,
under `<box_name>.local`, and no `fp` at all, never an empty one.

Nothing here leaves the LAN: mDNS is link-local multicast (224.0.0.251 / ff02::fb).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from strongroom import PROTOCOL_VERSION

PEER_SERVICE_TYPE = "_strongroom._tcp.local."
WEB_SERVICE_TYPE = "_https._tcp.local."
PEER_PATH = "/peer"
DEFAULT_HOST_NAME = "strongroom"


def lan_addresses(adapters: Iterable[ifaddr.Adapter] | None = None) -> list[str]:
    """The addresses phones on the LAN can reach this box at, to publish.

    Every IPv4 and routable IPv6 (ULA, global) address of every interface except
    loopback; IPv6 link-local is left out because it is useless without a scope.
    `adapters` defaults to the machine's (ifaddr, which zeroconf itself uses).
    Call again and pass the result to `Advertiser.update_addresses` when DHCP
    or SLAAC changes them.
    """
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for adapter in ifaddr.get_adapters() if adapters is None else adapters:
        for ip in adapter.ips:
            raw = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = ipaddress.ip_address(raw.split("%")[0])
            if address.is_loopback or address.is_unspecified:
                continue
            if address.version == 6 and address.is_link_local:
                continue
            found.add(address)
    return [str(a) for a in sorted(found, key=lambda a: (a.version, a.packed))]


def unique_host_name(box_name: str, fingerprint: str | None) -> str:
    """`strongroom-3841`: the box name and the first 4 hex digits of its fingerprint."""
    digits = "".join(c for c in (fingerprint or "").lower() if c in "0123456789abcdef")
    return f"{box_name}-{digits[:4]}" if len(digits) >= 4 else box_name


def instance_name(practice: str | None, host_name: str) -> str:
    """`Cabinet Martin (strongroom-3841)`, at most 63 bytes (one DNS label)."""
    suffix = f" ({host_name})"
    label = " ".join((practice or "").replace(".", " ").split())
    if not label:
        return host_name
    room = 63 - len(suffix.encode())
    encoded = label.encode()[:room]
    return encoded.decode("utf-8", errors="ignore").rstrip() + suffix


def service_records(
    fingerprint: str | None,
    tls_key_fingerprint: str | None,
    protocol_version: int = PROTOCOL_VERSION,
) -> list[tuple[str, dict[str, str]]]:
    """The DNS-SD services and their TXT, whichever stack publishes them.

    Without an identity (first run) only the web UI, and no `fp` key at all.
    """
    services: list[tuple[str, dict[str, str]]] = []
    web_txt = {"path": "/"}
    if fingerprint:
        peer_txt = {"pv": str(protocol_version), "fp": fingerprint, "path": PEER_PATH}
        web_txt["fp"] = fingerprint
        services.append((PEER_SERVICE_TYPE, peer_txt))
    services.append((WEB_SERVICE_TYPE, web_txt))
    if tls_key_fingerprint:
        # The HTTPS key's SPKI SHA-256 (the caller passes it), so a person can compare it.
        for _, txt in services:
            txt["tls"] = tls_key_fingerprint
    return services


class AdvertiserStateError(RuntimeError):
    """start/update/stop called in the wrong order."""


def _parse_addresses(addresses: Sequence[str]) -> list[bytes]:
    # Packed form, sorted, so that "did the set change?" is a plain comparison.
    packed = {ipaddress.ip_address(a).packed for a in addresses}
    return sorted(packed)


class PublishedIdentity:
    """What either advertiser (zeroconf here, avahi-daemon in `avahi`) publishes about
    the box: its port, key fingerprints, instance and host names, protocol version."""

    def __init__(
        self,
        *,
        port: int,
        fingerprint: str | None,
        name: str,
        protocol_version: int,
        tls_key_fingerprint: str | None,
        host_name: str | None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
        self.port = port
        self.fingerprint = fingerprint or None
        self.tls_key_fingerprint = tls_key_fingerprint
        self.name = name
        self.host = f"{host_name or name}.local."
        self.protocol_version = protocol_version

    def _renamed(
        self, fingerprint: str | None, name: str, host_name: str | None
    ) -> tuple[str | None, str, str] | None:
        """The new (fingerprint, name, host) for `republish`, or None when unchanged."""
        new = (fingerprint or None, name, f"{host_name or name}.local.")
        return None if new == (self.fingerprint, self.name, self.host) else new


class Advertiser(PublishedIdentity):
    """Registers the box's two DNS-SD services and keeps their addresses current.

    `interfaces`: where to speak mDNS, as addresses of local interfaces (tests
    pass ["127.0.0.1"]); None means every interface. `addresses`: the IPs to
    publish for `<name>.local.`.
    """

    def __init__(
        self,
        *,
        port: int,
        fingerprint: str | None,
        addresses: Sequence[str],
        name: str = DEFAULT_HOST_NAME,
        interfaces: Sequence[str] | None = None,
        protocol_version: int = PROTOCOL_VERSION,
        tls_key_fingerprint: str | None = None,
        host_name: str | None = None,
    ) -> None:
        super().__init__(
            port=port,
            fingerprint=fingerprint,
            name=name,
            protocol_version=protocol_version,
            tls_key_fingerprint=tls_key_fingerprint,
            host_name=host_name,
        )
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._addresses = _parse_addresses(addresses)
        self._zc: AsyncZeroconf | None = None
        self._infos: list[AsyncServiceInfo] = []

    @property
    def addresses(self) -> list[str]:
        """The addresses currently published."""
        return [str(ipaddress.ip_address(a)) for a in self._addresses]

    @property
    def service_names(self) -> list[str]:
        """Registered instance names (zeroconf may append ' (2)' on a name clash)."""
        return [info.name for info in self._infos]

    def _build_infos(self) -> list[AsyncServiceInfo]:
        services = service_records(
            self.fingerprint, self.tls_key_fingerprint, self.protocol_version
        )
        return [
            AsyncServiceInfo(
                service_type,
                f"{self.name}.{service_type}",
                port=self.port,
                properties=txt,
                server=self.host,
                addresses=self._addresses,
            )
            for service_type, txt in services
        ]

    def _ip_version(self) -> IPVersion:
        if self._interfaces is None:
            return IPVersion.All
        versions = {ipaddress.ip_address(i.split("%")[0]).version for i in self._interfaces}
        if versions == {4}:
            return IPVersion.V4Only
        if versions == {6}:
            return IPVersion.V6Only
        return IPVersion.All

    async def start(self) -> None:
        """Probe, register and announce both services; returns once announced."""
        if self._zc is not None:
            raise AdvertiserStateError("advertiser already started")
        interfaces = self._interfaces if self._interfaces is not None else InterfaceChoice.All
        zc = AsyncZeroconf(interfaces=interfaces, ip_version=self._ip_version())
        self._zc = zc
        try:
            await self._register(zc)
        except BaseException:
            await self.stop()
            raise

    async def _register(self, zc: AsyncZeroconf) -> None:
        for info in self._build_infos():
            # The first await queues the registration; the second waits
            # for probing and the announcement to finish.
            await (await zc.async_register_service(info, allow_name_change=True))
            self._infos.append(info)

    async def republish(
        self, *, fingerprint: str | None, name: str, host_name: str | None = None
    ) -> bool:
        """New identity or names (first-run wizard done, practice name known).

        Says goodbye to the old records and announces the new ones; returns
        False when nothing changed.
        """
        if self._zc is None:
            raise AdvertiserStateError("advertiser not started")
        renamed = self._renamed(fingerprint, name, host_name)
        if renamed is None:
            return False
        await self._zc.async_unregister_all_services()
        self._infos = []
        self.fingerprint, self.name, self.host = renamed
        await self._register(self._zc)
        return True

    async def update_addresses(self, addresses: Sequence[str]) -> bool:
        """Publish a new address set (e.g. DHCP renewed); re-announces only on change.

        Returns True when the set changed and was re-announced.
        """
        if self._zc is None:
            raise AdvertiserStateError("advertiser not started")
        new = _parse_addresses(addresses)
        if new == self._addresses:
            return False
        self._addresses = new
        for info in self._infos:
            info.addresses = new
            await (await self._zc.async_update_service(info))
        return True

    async def stop(self) -> None:
        """Unregister (mDNS goodbye, TTL 0) and close. Safe to call twice."""
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self._infos:
                await zc.async_unregister_all_services()
        finally:
            self._infos = []
            await zc.async_close()
