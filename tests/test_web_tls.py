"""The box certificate (made with the openssl CLI) and the http -> https redirect."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from strongroom.web.tls import (
    CERT_NAME,
    ServedCertificate,
    certificate_fingerprint,
    certificate_names,
    ensure_certificate,
    http_redirect_app,
)


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def test_certificate_is_ec_p256_with_names_and_stable(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path / "tls", "cabinet-durand", addresses=["192.168.1.20"])
    text = _openssl("x509", "-in", str(cert), "-noout", "-text")
    assert "prime256v1" in text or "P-256" in text
    assert "DNS:cabinet-durand.local" in text and "DNS:strongroom.local" in text
    assert "IP Address:192.168.1.20" in text
    assert key.stat().st_mode & 0o077 == 0
    fingerprint = certificate_fingerprint(tmp_path / "tls")
    expected = _openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256")
    assert expected.strip().split("=", 1)[1] == fingerprint
    # A second start reuses the same certificate (the fingerprint users checked stays valid).
    assert ensure_certificate(tmp_path / "tls", "cabinet-durand") == (cert, key)
    assert certificate_fingerprint(tmp_path / "tls") == fingerprint


def test_no_certificate_no_fingerprint(tmp_path: Path) -> None:
    assert certificate_fingerprint(tmp_path) is None


async def test_http_redirects_to_https(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(http_redirect_app(8443))
    response = await client.get(
        "/archive?q=x", allow_redirects=False, headers={"Host": "strongroom.local"}
    )
    assert response.status == 308
    assert response.headers["Location"] == "https://strongroom.local:8443/archive?q=x"


def test_certificate_issued_again_with_the_same_key_when_the_names_change(tmp_path: Path) -> None:
    """Made before the identity (no unique name), issued again once it is known, then kept."""
    tls = tmp_path / "tls"
    cert, key = ensure_certificate(tls, "strongroom")
    first, key_bytes = certificate_fingerprint(tls), key.read_bytes()
    assert certificate_names(cert) == {"strongroom.local"}
    ensure_certificate(tls, "strongroom", unique_name="strongroom-3841")
    assert certificate_names(cert) == {"strongroom-3841.local", "strongroom.local"}
    assert key.read_bytes() == key_bytes  # a client pinning the public key keeps working
    second = certificate_fingerprint(tls)
    assert second != first
    ensure_certificate(tls, "strongroom", unique_name="strongroom-3841")
    assert certificate_fingerprint(tls) == second  # names unchanged: the same certificate
    # Another identity (a box initialised again): the old unique name goes.
    ensure_certificate(tls, "strongroom", unique_name="strongroom-77ab")
    assert certificate_names(cert) == {"strongroom-77ab.local", "strongroom.local"}


async def test_renewal_runs_openssl_off_the_event_loop(tmp_path: Path) -> None:
    """At unlock (on the event loop) the certificate is issued again: the loop keeps
    serving while openssl works. Here openssl waits until the loop has run a step
    after it started; run on the loop, it would wait for ever (and give up)."""
    tls, flags = tmp_path / "tls", tmp_path / "flags"
    flags.mkdir()
    real = shutil.which("openssl")
    assert real is not None
    slow = tmp_path / "slow-openssl"
    slow.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = req ] && [ -e {flags}/hold ]; then\n'
        f"  touch {flags}/waiting; i=0\n"
        f"  while [ ! -e {flags}/go ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.05; done\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    slow.chmod(0o755)
    served = ServedCertificate(tls, "strongroom", openssl=str(slow))
    served.start(None)
    first = certificate_fingerprint(tls)
    (flags / "hold").touch()
    renewal = asyncio.create_task(served.renew("strongroom-3841"))
    deadline = asyncio.get_running_loop().time() + 15
    while not (flags / "waiting").exists():  # the loop runs while openssl is at work
        assert asyncio.get_running_loop().time() < deadline, "openssl never started"
        await asyncio.sleep(0.02)
    (flags / "go").touch()
    fingerprint = await asyncio.wait_for(renewal, timeout=30)
    assert fingerprint is not None and fingerprint != first
    assert fingerprint == certificate_fingerprint(tls)
    assert certificate_names(tls / CERT_NAME) == {"strongroom-3841.local", "strongroom.local"}
    assert not list(tls.glob("*.tmp"))  # replaced atomically, nothing left beside it
