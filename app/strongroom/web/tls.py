"""HTTPS on the appliance: a self-signed certificate made at first run.

The certificate is EC P-256, made with the `openssl` command line (no crypto
written here), valid for the box's unique mDNS name (`strongroom-3841.local`,
once it has an identity), `<box_name>.local` and `strongroom.local`. Browsers
will warn once; the SHA-256 fingerprint is shown in the UI footer, the CLI and
the mDNS TXT record so that the office manager can check that the certificate
is the box's own. In development the box serves plain HTTP on loopback instead.

The unique name comes from the identity, which the first-run wizard creates
after the first certificate was made: when the names the certificate should
carry change, it is issued again **with the same private key** (a client that
pins the public key keeps working; the certificate's fingerprint changes, and
everything that shows it reads it again).
"""

from __future__ import annotations

import asyncio
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


def hostnames_for(box_name: str, unique_name: str | None = None) -> list[str]:
    """The names the certificate is valid for: the box's unique mDNS name (None before
    the box has an identity), the practice's chosen name and the default."""
    names = [f"{unique_name}.local"] if unique_name else []
    names += [f"{box_name}.local", DEFAULT_HOSTNAME] if box_name else [DEFAULT_HOSTNAME]
    return list(dict.fromkeys(names))


def ensure_certificate(
    tls_dir: Path,
    box_name: str = "strongroom",
    *,
    unique_name: str | None = None,
    addresses: list[str] | None = None,
    openssl: str = "openssl",
) -> tuple[Path, Path]:
    """(certificate, private key) paths: made once, and issued again (same key) when
    the DNS names it should carry are not exactly the ones it has."""
    cert_path, key_path = tls_dir / CERT_NAME, tls_dir / KEY_NAME
    wanted = hostnames_for(box_name, unique_name)
    if not (cert_path.exists() and key_path.exists()):
        _generate(tls_dir, wanted, addresses or [], openssl, key=None)
    elif certificate_names(cert_path, openssl) != set(wanted):
        _generate(tls_dir, wanted, addresses or [], openssl, key=key_path)
    return cert_path, key_path


def certificate_names(cert_path: Path, openssl: str = "openssl") -> set[str]:
    """The DNS names in the certificate's subjectAltName (read by openssl)."""
    executable = _openssl(openssl)
    done = subprocess.run(  # noqa: S603
        [executable, "x509", "-in", str(cert_path), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise TlsError(f"openssl failed: {done.stderr.strip()[:500]}")
    entries = done.stdout.split("\n", 1)[-1].replace("\n", ",").split(",")
    return {e.strip()[4:] for e in entries if e.strip().startswith("DNS:")}


def _openssl(openssl: str) -> str:
    executable = shutil.which(openssl)
    if executable is None:
        raise TlsError("the openssl command is not installed")
    return executable


def certificate_fingerprint(tls_dir: Path) -> str | None:
    """The SHA-256 fingerprint of the box certificate, or None if there is none yet."""
    cert_path = tls_dir / CERT_NAME
    try:
        return fingerprint_of(cert_path)
    except (OSError, ValueError):
        return None


def _generate(
    tls_dir: Path, hostnames: list[str], addresses: list[str], openssl: str, *, key: Path | None
) -> None:
    """A new self-signed certificate; with `key`, for that existing private key."""
    executable = _openssl(openssl)
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp_cert, tmp_key = tls_dir / f"{CERT_NAME}.tmp", tls_dir / f"{KEY_NAME}.tmp"
    if key is None:
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-keyout", str(tmp_key)]
    else:
        new_key = ["-key", str(key)]
    command = [
        executable,
        "req",
        "-x509",
        *new_key,
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
    if key is None:
        os.replace(tmp_key, tls_dir / KEY_NAME)
    os.replace(tmp_cert, tls_dir / CERT_NAME)


def server_ssl_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


class ServedCertificate:
    """The HTTPS server's certificate and context, issued again when the names change."""

    def __init__(self, tls_dir: Path, box_name: str, openssl: str = "openssl") -> None:
        self.tls_dir, self.box_name, self.openssl = tls_dir, box_name, openssl
        self.context: ssl.SSLContext | None = None
        # One renewal at a time: two would write the same .tmp files.
        self._renewing = asyncio.Lock()

    def start(self, unique_name: str | None) -> ssl.SSLContext:
        cert, key = ensure_certificate(
            self.tls_dir, self.box_name, unique_name=unique_name, openssl=self.openssl
        )
        self.context = server_ssl_context(cert, key)
        return self.context

    async def renew(self, unique_name: str | None) -> str | None:
        """The new fingerprint if the certificate was issued again (new connections get
        it; open ones keep theirs), else None. Raises TlsError if openssl fails.

        openssl runs in a worker thread (it is called at unlock, from the event loop:
        the box keeps serving meanwhile); the files are still replaced atomically."""
        if self.context is None:
            return None
        async with self._renewing:
            before = certificate_fingerprint(self.tls_dir)
            cert, key = await asyncio.to_thread(
                ensure_certificate,
                self.tls_dir,
                self.box_name,
                unique_name=unique_name,
                openssl=self.openssl,
            )
            after = certificate_fingerprint(self.tls_dir)
            if after == before:
                return None
            self.context.load_cert_chain(cert, key)
            return after


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
