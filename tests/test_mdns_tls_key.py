"""mDNS TXT `tls` is the HTTPS key's SPKI fingerprint, what a person compares (the page
footer, the recovery sheet, `strongroom status`), not the certificate's SHA-256, which
changes when the wizard's new identity has the certificate issued again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from e2e_helpers import start_box, until
from strongroom.appliance.discovery import PEER_SERVICE_TYPE, WEB_SERVICE_TYPE
from strongroom.config import BoxConfig
from strongroom.identity import new_entropy
from strongroom.web.tls_key import certificate_key_fingerprint
from web_helpers import ADMIN_PASSWORD, CHEAP_LIMITS


@pytest.fixture
async def browser() -> AsyncIterator[AsyncZeroconf]:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    yield zc
    await zc.async_close()


async def txt_tls(zc: AsyncZeroconf, service_type: str, names: list[str]) -> bytes | None:
    (name,) = [n for n in names if n.endswith(service_type)]
    info = AsyncServiceInfo(service_type, name)
    assert await info.async_request(zc.zeroconf, 3000), name
    return info.properties.get(b"tls")


async def test_txt_tls_is_the_key_fingerprint_and_survives_the_reissue(
    tmp_path: Path, browser: AsyncZeroconf
) -> None:
    config = BoxConfig(
        data_dir=tmp_path / "data",
        port=0,
        tls=True,
        box_name=f"strongroom-{uuid.uuid4().hex[:6]}",  # unique: parallel runs share lo
        advertise_mdns=True,
        mdns_interfaces=("127.0.0.1",),
    )
    running = await start_box(config, unlock=False)  # first run: no identity yet
    try:
        runtime, announcer = running.runtime, running.runtime.announcer
        assert announcer is not None
        key = certificate_key_fingerprint(config.tls_dir)
        assert key is not None and key == runtime.tls_key_fingerprint()
        first_certificate = runtime.tls_fingerprint()
        names = announcer.advertiser.service_names
        assert await txt_tls(browser, WEB_SERVICE_TYPE, names) == key.encode()

        # The wizard makes the identity: the certificate is issued again, same key.
        running.box.initialise(new_entropy(), ADMIN_PASSWORD, **CHEAP_LIMITS)
        renewal = runtime.certificate_renewal
        assert renewal is not None
        await renewal
        assert runtime.tls_fingerprint() != first_certificate
        await until(
            lambda: len(announcer.advertiser.service_names) == 2,
            what="the phones' service beside the web UI's, once the box has an identity",
        )
        names = announcer.advertiser.service_names
        for service_type in (PEER_SERVICE_TYPE, WEB_SERVICE_TYPE):
            assert await txt_tls(browser, service_type, names) == key.encode()
    finally:
        await running.stop()
