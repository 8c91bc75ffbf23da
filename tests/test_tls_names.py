"""The box's HTTPS certificate carries its unique mDNS name (`strongroom-3841.local`).

A phone that trusts the box's certificate (as the reference CLI does with
SSL_CERT_FILE) connects by the name the box publishes on mDNS, and TLS checks
that name: before, the certificate named only `strongroom.local` and the
connection failed with CERTIFICATE_VERIFY_FAILED on a real appliance.
Names resolve to 127.0.0.1 through the client's resolver, standing for mDNS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from e2e_helpers import prepare_data_dir, start_box
from strongroom.appliance.discovery import unique_host_name
from strongroom.client.phone import PhoneClient
from strongroom.client.state import DeviceState
from strongroom.config import BoxConfig
from strongroom.identity import new_entropy
from strongroom.pairing.control_routes import offer_host
from strongroom.web.state import STATE
from strongroom.web.tls import CERT_NAME, certificate_fingerprint, certificate_names
from web_helpers import ADMIN_PASSWORD, CHEAP_LIMITS


class LanNames(AbstractResolver):
    """What mDNS does on the LAN: these names are the box on 127.0.0.1."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


def trusting(cert: Path, names: set[str]) -> aiohttp.ClientSession:
    """A phone's HTTP session that trusts only the box's certificate, with hostname checks."""
    context = ssl.create_default_context(cafile=str(cert))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, resolver=LanNames(names))
    )


def served_certificate(port: int) -> bytes:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return ssl.PEM_cert_to_DER_cert(pem)


async def test_a_phone_verifies_the_box_by_its_unique_name(tmp_path: Path) -> None:
    config = (await prepare_data_dir(tmp_path / "data")).with_overrides(tls=True)
    running = await start_box(config)
    try:
        unique = unique_host_name(config.box_name, running.fingerprint) + ".local"
        cert = config.tls_dir / CERT_NAME
        port = running.runtime.port
        offer = running.pairing.issue_qr(unique, port, running.fingerprint)
        async with trusting(cert, {unique, "strongroom.local"}) as http:
            phone = PhoneClient(DeviceState.generate("Pixel", "claire"), http=http, keepalive=False)
            # No URL: the phone goes where the QR code says, wss://<unique>.local:<port>/peer.
            paired = await phone.pair_qr(None, offer.uri)
            assert paired.device_id > 0
            await phone.close()
            # The name it had before still verifies too.
            again = PhoneClient(phone.state, http=http, keepalive=False)
            await again.connect(f"wss://strongroom.local:{port}/peer")
            assert again.connected
            await again.close()
        assert certificate_names(cert) == {unique, "strongroom.local"}
    finally:
        await running.stop()


async def test_the_wizard_identity_renews_the_served_certificate(tmp_path: Path) -> None:
    """First run: no identity, so no unique name; once the wizard makes one, new
    connections get a certificate with it (same key), and the footer shows its fingerprint."""
    config = BoxConfig(data_dir=tmp_path / "data", port=0, tls=True)
    running = await start_box(config, unlock=False)
    try:
        cert = config.tls_dir / CERT_NAME
        port = running.runtime.port
        first = await asyncio.to_thread(served_certificate, port)
        assert certificate_names(cert) == {"strongroom.local"}
        key = (config.tls_dir / "box.key").read_bytes()
        # What the wizard does once the admin has chosen the passphrase.
        running.box.initialise(new_entropy(), ADMIN_PASSWORD, **CHEAP_LIMITS)
        renewal = running.runtime.certificate_renewal
        assert renewal is not None
        await renewal  # openssl runs off the event loop
        unique = unique_host_name(config.box_name, running.fingerprint) + ".local"
        assert certificate_names(cert) == {unique, "strongroom.local"}
        assert (config.tls_dir / "box.key").read_bytes() == key
        now = await asyncio.to_thread(served_certificate, port)
        assert now != first and now == ssl.PEM_cert_to_DER_cert(cert.read_text())
        fingerprint = certificate_fingerprint(config.tls_dir)
        web = running.runtime._web
        assert web is not None and web[STATE].tls_fingerprint == fingerprint
        async with trusting(cert, {unique}) as http:
            page = await http.get(f"https://{unique}:{port}/login")
            assert page.status == 200
            assert fingerprint is not None and fingerprint in await page.text()
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("::", "strongroom-a1b2.local"),
        ("0.0.0.0", "strongroom-a1b2.local"),
        ("10.0.0.5", "10.0.0.5"),
    ],
)
def test_cli_qr_names_the_unique_host(configured: str, expected: str) -> None:
    """`strongroom pair --qr` on a box listening everywhere names the host its certificate has."""
    assert offer_host(configured, "strongroom", "a1b2-c3d4-e5f6-0718") == expected
