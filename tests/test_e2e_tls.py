"""The appliance's HTTPS: a certificate made at first run, http:// redirected, phones over wss://."""

from __future__ import annotations

import asyncio
import socket
import ssl
import stat
from pathlib import Path

import aiohttp

from e2e_helpers import prepare_data_dir, start_box
from strongroom.control import socket_path
from strongroom.web.tls import CERT_NAME, KEY_NAME, certificate_fingerprint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_https_with_the_first_run_certificate_and_http_redirect(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "data")
    redirect_port = _free_port()
    config = config.with_overrides(tls=True, http_redirect_port=redirect_port)
    running = await start_box(config)
    try:
        runtime = running.runtime
        assert runtime.url.startswith("https://")
        cert = config.tls_dir
        fingerprint = certificate_fingerprint(cert)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed: the person compares the fingerprint
        async with aiohttp.ClientSession() as http:
            login = await http.get(f"{runtime.url}/login", ssl=context)
            assert login.status == 200
            page = await login.text()
            assert fingerprint is not None and fingerprint in page
            # threat-model.md: session cookies HttpOnly + SameSite=Strict, + Secure with TLS
            # (never sent over the http:// redirect), and browsers keep to https.
            cookie = login.headers["Set-Cookie"]
            assert {"HttpOnly", "Secure", "SameSite=Strict"} <= {
                part.strip() for part in cookie.split(";")
            }, cookie
            assert login.headers["Strict-Transport-Security"] == "max-age=31536000"
            moved = await http.get(
                f"http://127.0.0.1:{redirect_port}/login?next=/archive", allow_redirects=False
            )
            assert moved.status == 308
            assert moved.headers["Location"].startswith("https://")
            assert moved.headers["Location"].endswith(f":{runtime.port}/login?next=/archive")
        # The served certificate is the one whose fingerprint the UI shows.
        served = await asyncio.to_thread(
            ssl.get_server_certificate, ("127.0.0.1", runtime.port), timeout=10
        )
        on_disk = (cert / CERT_NAME).read_text()
        assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(on_disk)
        # The modes the docs state: the data dir 0700 (architecture.md), the TLS key 0600
        # (operations.md), the control socket 0600 (architecture.md, "Lifecycle").
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in (config.data_dir, cert / KEY_NAME, socket_path(config.data_dir))
        }
        assert modes == {
            config.data_dir.name: 0o700,
            KEY_NAME: 0o600,
            socket_path(config.data_dir).name: 0o600,
        }
    finally:
        await running.stop()
