"""The HTTPS key's fingerprint stays the same when the certificate is issued again.

Every re-issue (the identity made by the wizard, a rename) changes the
certificate's own SHA-256: a person who printed or noted it would find a
mismatch and learn that mismatches are normal. The key's SHA-256
(SubjectPublicKeyInfo, web/tls_key.py) does not change; the box shows it in the
page footer, on the recovery sheet and in `strongroom fingerprint`, and it is
exactly what the openssl line of docs/operations.md prints for the served
certificate. A real box on loopback, real openssl, real TLS.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp

from e2e_helpers import start_box
from strongroom.config import BoxConfig
from strongroom.identity import new_entropy
from strongroom.web.tls import certificate_fingerprint, ensure_certificate
from strongroom.web.tls_key import certificate_key_fingerprint
from web_helpers import ADMIN_PASSWORD, CHEAP_LIMITS


def openssl_key_fingerprint(port: int) -> str:
    """docs/operations.md's line, against the box on 127.0.0.1 instead of its mDNS name."""
    line = (
        f"openssl s_client -connect 127.0.0.1:{port} -servername strongroom.local"
        " </dev/null 2>/dev/null"
        " | openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
    )
    done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.split()[0]


def served_certificate(port: int) -> bytes:
    return ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port), timeout=10))


async def footer(port: int) -> str:
    """A page of the box as a browser gets it (the certificate is self-signed)."""
    async with aiohttp.ClientSession() as http:
        page = await http.get(f"https://127.0.0.1:{port}/", ssl=False)
        assert page.status == 200
        return await page.text()


def test_a_rename_changes_the_certificate_but_not_the_key_fingerprint(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    cert, _ = ensure_certificate(tls, "strongroom")
    key, first = certificate_key_fingerprint(tls), certificate_fingerprint(tls)
    ensure_certificate(tls, "cabinet-durand")  # the practice renames the box
    assert certificate_fingerprint(tls) != first
    assert certificate_key_fingerprint(tls) == key
    # The same digits as openssl's, from the certificate file.
    line = f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
    done = subprocess.run(line, shell=True, capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == key
    assert key is not None and len(key) == 64


async def test_the_footer_and_the_cli_show_a_key_fingerprint_that_survives_reissues(
    tmp_path: Path,
) -> None:
    config = BoxConfig(data_dir=tmp_path / "data", port=0, tls=True)
    running = await start_box(config, unlock=False)
    try:
        port = running.runtime.port
        key = await asyncio.to_thread(openssl_key_fingerprint, port)
        first_cert = certificate_fingerprint(config.tls_dir)
        before = await footer(port)
        assert key in before and first_cert is not None and first_cert in before
        assert "HTTPS public key (SHA-256, stays the same)" in before or (
            "Clé publique HTTPS (SHA-256, ne change pas)" in before
        )
        served = await asyncio.to_thread(served_certificate, port)

        # The wizard makes the identity: the certificate is issued again (same key).
        running.box.initialise(new_entropy(), ADMIN_PASSWORD, **CHEAP_LIMITS)
        renewal = running.runtime.certificate_renewal
        assert renewal is not None
        await renewal
        assert await asyncio.to_thread(served_certificate, port) != served
        second_cert = certificate_fingerprint(config.tls_dir)
        assert second_cert != first_cert
        assert await asyncio.to_thread(openssl_key_fingerprint, port) == key
        after = await footer(port)
        assert key in after and second_cert is not None and second_cert in after
        assert first_cert not in after
    finally:
        await running.stop()

    # Renamed, started again: another certificate, the same key, and the CLI says so.
    renamed = config.with_overrides(box_name="cabinet-durand")
    running = await start_box(renamed)
    try:
        port = running.runtime.port
        assert certificate_fingerprint(config.tls_dir) not in (first_cert, second_cert)
        assert await asyncio.to_thread(openssl_key_fingerprint, port) == key
        assert key in await footer(port)
        command = [sys.executable, "-m", "strongroom", "fingerprint"]
        command += ["--data", str(config.data_dir)]
        printed = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
        )
        assert printed.returncode == 0, printed.stderr
        assert "HTTPS public key (SHA-256, stays the same):" in printed.stdout
        assert f"  {key}\n" in printed.stdout
    finally:
        await running.stop()
