"""Publish the box through avahi-daemon (its D-Bus API) when avahi runs.

Raspberry Pi OS enables avahi-daemon. A second mDNS responder beside it
(zeroconf) works, but two stacks answer on UDP 5353 and neither knows the
other's names; a Debian maintainer publishes through the system's daemon. So
when `org.freedesktop.Avahi` is on the system bus, the box hands avahi the same
records `discovery.Advertiser` would announce: one entry group with the two
DNS-SD services (`service_records`) pointing at the unique host name
`strongroom-3841.local`, and that host name's A/AAAA records (`AddAddress`,
without reverse PTR records: the Pi's own host name already owns those, and a
second owner would be a collision).

Why D-Bus and not static files in /etc/avahi/services: the names, `fp` and
`tls` only exist once the wizard has run, the practice name only after the
unlock, and the addresses follow DHCP; the sandboxed service cannot (and should
not) write to /etc. An entry group lives as long as the D-Bus connection that
made it, so records vanish with the service, as zeroconf's goodbye would do.

The default D-Bus policy of Debian's avahi-daemon lets any user publish (only
SetHostName is root's); the connection is AF_UNIX, outside the unit's IP rules.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from jeepney import DBusAddress, MessageType, new_method_call
from jeepney.io.asyncio import DBusConnection, DBusRouter, open_dbus_connection
from jeepney.low_level import Message

from strongroom import PROTOCOL_VERSION
from strongroom.appliance.discovery import (
    DEFAULT_HOST_NAME,
    AdvertiserStateError,
    PublishedIdentity,
    service_records,
)

log = logging.getLogger(__name__)

AVAHI_NAME = "org.freedesktop.Avahi"
SERVER = DBusAddress("/", bus_name=AVAHI_NAME, interface="org.freedesktop.Avahi.Server")
IF_UNSPEC = -1
PROTO_UNSPEC = -1
# AvahiPublishFlags (avahi-common/defs.h).
PUBLISH_NO_REVERSE = 1 << 4
# AvahiEntryGroupState.
GROUP_ESTABLISHED = 2
GROUP_COLLISION = 3
GROUP_FAILURE = 4


class AvahiError(RuntimeError):
    """avahi-daemon refused a call or went away."""


def _checked(reply: Message) -> tuple[object, ...]:
    if reply.header.message_type == MessageType.error:
        name = reply.header.fields.get(4, "error")  # HeaderFields.error_name
        raise AvahiError(f"avahi-daemon: {name}: {reply.body}")
    return tuple(reply.body)


def txt_array(txt: dict[str, str]) -> list[bytes]:
    """DNS-SD TXT as avahi's `aay`: one `key=value` byte string each, sorted."""
    return [f"{key}={value}".encode() for key, value in sorted(txt.items())]


def avahi_service_type(service_type: str) -> str:
    """`_strongroom._tcp.local.` -> `_strongroom._tcp` (avahi adds the domain)."""
    return service_type.removesuffix(".").removesuffix(".local")


async def avahi_running(bus: str = "SYSTEM") -> bool:
    """True when avahi-daemon owns its name on the system bus.

    NameHasOwner, not a call to avahi: a call could D-Bus-activate a daemon the
    administrator disabled. No bus at all (a container, a minimal image) is
    simply "no avahi": the box then runs zeroconf.
    """
    try:
        conn = await open_dbus_connection(bus)
    except (OSError, ValueError, KeyError) as exc:
        log.info("no D-Bus system bus (%s): mDNS through zeroconf", exc)
        return False
    try:
        router = DBusRouter(conn)
        try:
            dbus = DBusAddress(
                "/org/freedesktop/DBus",
                bus_name="org.freedesktop.DBus",
                interface="org.freedesktop.DBus",
            )
            reply = await router.send_and_get_reply(
                new_method_call(dbus, "NameHasOwner", "s", (AVAHI_NAME,))
            )
            (owned,) = _checked(reply)
            return bool(owned)
        finally:
            await router.__aexit__(None, None, None)
    except (OSError, AvahiError) as exc:
        log.warning("could not ask D-Bus about avahi-daemon (%s): mDNS through zeroconf", exc)
        return False
    finally:
        await conn.close()


class AvahiAdvertiser(PublishedIdentity):
    """`discovery.Advertiser`'s interface, published by avahi-daemon."""

    def __init__(
        self,
        *,
        port: int,
        fingerprint: str | None,
        addresses: Sequence[str],
        name: str = DEFAULT_HOST_NAME,
        protocol_version: int = PROTOCOL_VERSION,
        tls_key_fingerprint: str | None = None,
        host_name: str | None = None,
        bus: str = "SYSTEM",
    ) -> None:
        super().__init__(
            port=port,
            fingerprint=fingerprint,
            name=name,
            protocol_version=protocol_version,
            tls_key_fingerprint=tls_key_fingerprint,
            host_name=host_name,
        )
        self._addresses = sorted({str(ipaddress.ip_address(a)) for a in addresses})
        self._bus = bus
        self._conn: DBusConnection | None = None
        self._router: DBusRouter | None = None
        self._group: DBusAddress | None = None
        self.state: int | None = None

    @property
    def addresses(self) -> list[str]:
        return list(self._addresses)

    @property
    def service_names(self) -> list[str]:
        return [
            f"{self.name}.{service_type}"
            for service_type, _ in service_records(
                self.fingerprint, self.tls_key_fingerprint, self.protocol_version
            )
        ]

    async def _call(
        self, address: DBusAddress, method: str, sig: str = "", body: tuple[object, ...] = ()
    ) -> tuple[object, ...]:
        if self._router is None:
            raise AvahiError("not connected to avahi-daemon")
        try:
            reply = await self._router.send_and_get_reply(
                new_method_call(address, method, sig, body)
            )
        except Exception as exc:  # jeepney raises RouterClosed etc. when the bus drops
            raise AvahiError(f"avahi-daemon unreachable: {exc!r}") from exc
        return _checked(reply)

    def _group_address(self, path: str) -> DBusAddress:
        return DBusAddress(path, bus_name=AVAHI_NAME, interface="org.freedesktop.Avahi.EntryGroup")

    async def start(self) -> None:
        """Connect, create the entry group and commit the records."""
        if self._router is not None:
            raise AdvertiserStateError("advertiser already started")
        try:
            self._conn = await open_dbus_connection(self._bus)
        except (OSError, ValueError, KeyError) as exc:
            raise AvahiError(f"no D-Bus system bus: {exc}") from exc
        self._router = DBusRouter(self._conn)
        try:
            (path,) = await self._call(SERVER, "EntryGroupNew")
            self._group = self._group_address(str(path))
            await self._commit()
        except BaseException:
            await self.stop()
            raise

    async def _commit(self) -> None:
        group = self._group
        assert group is not None
        host = self.host.removesuffix(".")
        for service_type, txt in service_records(
            self.fingerprint, self.tls_key_fingerprint, self.protocol_version
        ):
            await self._call(
                group,
                "AddService",
                "iiussssqaay",
                (
                    IF_UNSPEC,
                    PROTO_UNSPEC,
                    0,
                    self.name,
                    avahi_service_type(service_type),
                    "",
                    host,
                    self.port,
                    txt_array(txt),
                ),
            )
        for address in self._addresses:
            await self._call(
                group,
                "AddAddress",
                "iiuss",
                (IF_UNSPEC, PROTO_UNSPEC, PUBLISH_NO_REVERSE, host, address),
            )
        await self._call(group, "Commit")
        await self.check()

    async def check(self) -> int:
        """The entry group's state; a name collision or failure is logged as an error."""
        if self._group is None:
            raise AvahiError("not published through avahi-daemon")
        (state,) = await self._call(self._group, "GetState")
        self.state = int(state)  # type: ignore[call-overload]
        if self.state in (GROUP_COLLISION, GROUP_FAILURE):
            log.error(
                "avahi could not publish %s (state %d): another device uses this name",
                self.host,
                self.state,
            )
        return self.state

    async def _republish(self) -> None:
        assert self._group is not None
        await self._call(self._group, "Reset")
        await self._commit()

    async def republish(
        self, *, fingerprint: str | None, name: str, host_name: str | None = None
    ) -> bool:
        if self._router is None:
            raise AdvertiserStateError("advertiser not started")
        renamed = self._renamed(fingerprint, name, host_name)
        if renamed is None:
            return False
        self.fingerprint, self.name, self.host = renamed
        await self._republish()
        return True

    async def update_addresses(self, addresses: Sequence[str]) -> bool:
        if self._router is None:
            raise AdvertiserStateError("advertiser not started")
        new = sorted({str(ipaddress.ip_address(a)) for a in addresses})
        if new == self._addresses:
            return False
        self._addresses = new
        await self._republish()
        return True

    async def stop(self) -> None:
        """Free the group (avahi sends the goodbyes) and close. Safe to call twice."""
        router, conn, group = self._router, self._conn, self._group
        self._router = self._conn = self._group = None
        try:
            if router is not None and group is not None:
                try:
                    reply = await router.send_and_get_reply(new_method_call(group, "Free"))
                    _checked(reply)
                except Exception:  # the daemon may be gone already: nothing to withdraw
                    log.info("avahi entry group already gone")
        finally:
            if router is not None:
                await router.__aexit__(None, None, None)
            if conn is not None:
                await conn.close()
