"""HTTPS on the appliance: a self-signed certificate made at first run.

The certificate is EC P-256, made with the `openssl` command line (no crypto
written here), valid for `strongroom.local`, the practice's chosen name and
the box's LAN address. Browsers will warn once; the SHA-256 fingerprint is
shown in the UI footer, the CLI and the mDNS TXT record so that the office
manager can check that the certificate is the box's own. In development the
box serves plain HTTP on loopback instead.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import ssl
import subprocess
from pathlib import Path

from aiohttp import web

CERT_NAME = "box.crt"
KEY_NAME = "box.key"
VALID_DAYS = 3650
DEFAULT_HOSTNAME = "strongroom.local"


class TlsError(Exception):
    """The certificate could not be made or read (openssl missing or failing)."""


def _pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


def fingerprint_of(cert_path: Path) -> str:
    digest = hashlib.sha256(_pem_to_der(cert_path.read_bytes())).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _subject_alt_names(hostnames: list[str], addresses: list[str]) -> str:
    names = [f"DNS:{h}" for h in dict.fromkeys(hostnames)]
    for address in dict.fromkeys(addresses):
        ipaddress.ip_address(address)  # refuse anything that is not an address
        names.append(f"IP:{address}")
    return ",".join(names)


def hostnames_for(box_name: str) -> list[str]:
    """The names the certificate is valid for: the practice's chosen name and the default."""
    names = [f"{box_name}.local", DEFAULT_HOSTNAME] if box_name else [DEFAULT_HOSTNAME]
    return list(dict.fromkeys(names))


def ensure_certificate(
    tls_dir: Path,
    box_name: str = "strongroom",
    *,
    addresses: list[str] | None = None,
    openssl: str = "openssl",
) -> tuple[Path, Path]:
    """(certificate, private key) paths, generating them once if they do not exist."""
    cert_path, key_path = tls_dir / CERT_NAME, tls_dir / KEY_NAME
    if not (cert_path.exists() and key_path.exists()):
        _generate(tls_dir, hostnames_for(box_name), addresses or [], openssl)
    return cert_path, key_path


def certificate_fingerprint(tls_dir: Path) -> str | None:
    """The SHA-256 fingerprint of the box certificate, or None if there is none yet."""
    cert_path = tls_dir / CERT_NAME
    try:
        return fingerprint_of(cert_path)
    except (OSError, ValueError):
        return None


def _generate(tls_dir: Path, hostnames: list[str], addresses: list[str], openssl: str) -> None:
    executable = shutil.which(openssl)
    if executable is None:
        raise TlsError("the openssl command is not installed")
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp_cert, tmp_key = tls_dir / f"{CERT_NAME}.tmp", tls_dir / f"{KEY_NAME}.tmp"
    command = [
        executable,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-sha256",
        "-days",
        str(VALID_DAYS),
        "-subj",
        f"/CN={hostnames[0]}/O=Strongroom",
        "-addext",
        f"subjectAltName={_subject_alt_names(hostnames, addresses)}",
        "-addext",
        "keyUsage=critical,digitalSignature",
        "-addext",
        "extendedKeyUsage=serverAuth",
        "-keyout",
        str(tmp_key),
        "-out",
        str(tmp_cert),
    ]
    old_umask = os.umask(0o077)  # the private key is never readable by others, not even briefly
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    finally:
        os.umask(old_umask)
    if done.returncode != 0:
        raise TlsError(f"openssl failed: {done.stderr.strip()[:500]}")
    os.replace(tmp_key, tls_dir / KEY_NAME)
    os.replace(tmp_cert, tls_dir / CERT_NAME)


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def http_redirect_app(https_port: int = 443) -> web.Application:
    """A tiny app for port 80 that sends every request to the same path over HTTPS."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        host = (request.host or DEFAULT_HOSTNAME).split(":")[0]
        if host.startswith("[") or not host:
            host = DEFAULT_HOSTNAME
        port = "" if https_port == 443 else f":{https_port}"
        raise web.HTTPPermanentRedirect(f"https://{host}{port}{request.path_qs}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app
