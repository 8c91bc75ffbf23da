"""The running box on mDNS: names from its identity and practice, addresses it serves.

`Announcer` owns the `Advertiser` for a `BoxRuntime`: it starts with the names
known at boot (a locked box knows its fingerprint, not its practice name),
republishes when they change (identity created by the wizard, practice name
read after the unlock), and follows DHCP/SLAAC address changes.
"""

from __future__ import annotations

import asyncio
import logging

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


class Announcer:
    def __init__(self, box: Box, port: int, tls_fingerprint: str | None) -> None:
        self.box = box
        config = box.config
        self.advertiser = Advertiser(
            port=port,
            fingerprint=box.fingerprint,
            addresses=self._addresses(),
            name=self._instance(None),
            host_name=unique_host_name(config.box_name, box.fingerprint),
            interfaces=list(config.mdns_interfaces) or None,
            tls_fingerprint=tls_fingerprint,
        )

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
                await self.advertiser.update_addresses(self._addresses())
                await self.refresh_names()
            except OSError:
                log.exception("mDNS update failed; trying again in %.0f s", ADDRESS_CHECK_S)
