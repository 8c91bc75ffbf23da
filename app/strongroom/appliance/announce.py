"""The running box on mDNS: names from its identity and practice, addresses it serves.

`Announcer` owns the `Advertiser` for a `BoxRuntime`: it starts with the names
known at boot (a locked box knows its fingerprint, not its practice name),
republishes when they change (identity created by the wizard, practice name
read after the unlock), and follows DHCP/SLAAC address changes.

Which stack publishes (`choose_publisher`): avahi-daemon through D-Bus when it
runs and `mdns_publisher` is "auto" or "avahi", else the box's own zeroconf
responder. If avahi-daemon restarts (an upgrade), the records are handed to
the new daemon at the next 30 s check.
"""

from __future__ import annotations

import asyncio
import logging

from strongroom.appliance.avahi import AvahiAdvertiser, AvahiError, avahi_running
from strongroom.appliance.discovery import (
    Advertiser,
    instance_name,
    lan_addresses,
    unique_host_name,
)
from strongroom.appliance.network import advertised_addresses
from strongroom.box import Box
from strongroom.web.settings import PRACTICE_NAME, get_setting

log = logging.getLogger(__name__)

ADDRESS_CHECK_S = 30.0


async def choose_publisher(
    setting: str, bus: str = "SYSTEM", *, interfaces_pinned: bool = False
) -> str:
    """Which stack publishes ("avahi" or "zeroconf") for the `mdns_publisher` setting.

    "auto" keeps zeroconf when `mdns_interfaces` pins the interfaces (avahi
    publishes on its own set of interfaces, which the box cannot narrow).
    "avahi" forced while avahi-daemon is not running is an error at start,
    not a silent second stack.
    """
    if setting == "zeroconf" or (setting == "auto" and interfaces_pinned):
        return "zeroconf"
    running = await avahi_running(bus)
    if setting == "avahi" and not running:
        raise AvahiError("mdns_publisher = 'avahi' but avahi-daemon is not running")
    return "avahi" if running else "zeroconf"


class Announcer:
    def __init__(
        self, box: Box, port: int, tls_key_fingerprint: str | None, *, bus: str = "SYSTEM"
    ) -> None:
        self.box = box
        self.port = port
        self.tls_key_fingerprint = tls_key_fingerprint
        self.bus = bus
        self.advertiser: Advertiser | AvahiAdvertiser = self._zeroconf()

    def _zeroconf(self) -> Advertiser:
        config = self.box.config
        return Advertiser(
            port=self.port,
            fingerprint=self.box.fingerprint,
            addresses=self._addresses(),
            name=self._instance(self._practice_name()),
            host_name=unique_host_name(config.box_name, self.box.fingerprint),
            interfaces=list(config.mdns_interfaces) or None,
            tls_key_fingerprint=self.tls_key_fingerprint,
        )

    def _avahi(self) -> AvahiAdvertiser:
        return AvahiAdvertiser(
            port=self.port,
            fingerprint=self.box.fingerprint,
            addresses=self._addresses(),
            name=self._instance(self._practice_name()),
            host_name=unique_host_name(self.box.config.box_name, self.box.fingerprint),
            tls_key_fingerprint=self.tls_key_fingerprint,
            bus=self.bus,
        )

    @property
    def publisher(self) -> str:
        return "avahi" if isinstance(self.advertiser, AvahiAdvertiser) else "zeroconf"

    async def start(self) -> None:
        """Pick the stack (avahi-daemon if it runs) and announce."""
        config = self.box.config
        pinned = bool(config.mdns_interfaces)
        if (
            await choose_publisher(config.mdns_publisher, self.bus, interfaces_pinned=pinned)
            == "avahi"
        ):
            self.advertiser = self._avahi()
        log.info("mDNS through %s as %s", self.publisher, self.advertiser.host)
        await self.advertiser.start()

    async def stop(self) -> None:
        await self.advertiser.stop()

    def set_tls_key_fingerprint(self, tls_key_fingerprint: str | None) -> None:
        """The TXT `tls` value (the HTTPS key's SPKI fingerprint, which a certificate
        issued again keeps): the next `refresh_names` publishes it."""
        self.tls_key_fingerprint = self.advertiser.tls_key_fingerprint = tls_key_fingerprint

    @property
    def host_name(self) -> str:
        return self.advertiser.host.removesuffix(".local.")

    def _addresses(self) -> list[str]:
        return advertised_addresses(self.box.config.host, lan_addresses)

    def _instance(self, practice: str | None) -> str:
        host = unique_host_name(self.box.config.box_name, self.box.fingerprint)
        return instance_name(practice, host)

    def _practice_name(self) -> str | None:
        archive = self.box.archive
        if archive is None:
            return None
        conn = archive.reader()
        try:
            return get_setting(conn, PRACTICE_NAME)
        finally:
            conn.close()

    async def refresh_names(self) -> bool:
        """Republish if the fingerprint or the practice name changed; True if it did."""
        fingerprint = self.box.fingerprint
        return await self.advertiser.republish(
            fingerprint=fingerprint,
            name=self._instance(self._practice_name()),
            host_name=unique_host_name(self.box.config.box_name, fingerprint),
        )

    async def follow(self) -> None:
        """Every 30 s: new addresses (DHCP may move the box), new names (wizard, settings)."""
        while True:
            await asyncio.sleep(ADDRESS_CHECK_S)
            try:
                if isinstance(self.advertiser, AvahiAdvertiser):
                    await self.advertiser.check()  # raises if avahi-daemon restarted
                await self.advertiser.update_addresses(self._addresses())
                await self.refresh_names()
            except AvahiError:
                # avahi-daemon restarted or went away: a new group on the new one.
                log.warning("avahi-daemon lost; publishing again in %.0f s", ADDRESS_CHECK_S)
                await self._restart_avahi()
            except OSError:
                log.exception("mDNS update failed; trying again in %.0f s", ADDRESS_CHECK_S)

    async def _restart_avahi(self) -> None:
        await self.advertiser.stop()
        self.advertiser = self._avahi()
        try:
            await self.advertiser.start()
        except AvahiError as exc:
            log.warning("%s", exc)
