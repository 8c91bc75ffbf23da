"""The box's HTTPS certificate while it runs: served from the start, its fingerprints
shown, issued again (same key) when the box's names change at unlock (web/tls.py)."""

from __future__ import annotations

import logging
import ssl

from strongroom.config import BoxConfig
from strongroom.web.tls import ServedCertificate, TlsError, certificate_fingerprint
from strongroom.web.tls_key import certificate_key_fingerprint

log = logging.getLogger(__name__)


class BoxCertificate:
    """Nothing at all when the box serves plain HTTP (`tls = false`, development)."""

    def __init__(self, config: BoxConfig) -> None:
        self.config = config
        self._served = ServedCertificate(config.tls_dir, config.box_name)

    def fingerprint(self) -> str | None:
        """The certificate's SHA-256: it changes each time it is issued again."""
        if not self.config.tls:
            return None
        return certificate_fingerprint(self.config.tls_dir)

    def key_fingerprint(self) -> str | None:
        """The certificate key's SHA-256 (web/tls_key.py): the same across re-issues."""
        if not self.config.tls:
            return None
        return certificate_key_fingerprint(self.config.tls_dir)

    def context(self, unique_name: str | None) -> ssl.SSLContext | None:
        """The server's TLS context, the certificate made or issued again first if needed."""
        if not self.config.tls:
            return None
        return self._served.start(unique_name)

    async def renew(self, unique_name: str | None) -> str | None:
        """The new fingerprint when the certificate was issued again for `unique_name`;
        None when nothing changed or openssl failed (logged: the old certificate is
        still served, and strongroom.local still works)."""
        try:
            fingerprint = await self._served.renew(unique_name)
        except (TlsError, OSError) as exc:
            log.error("could not renew the HTTPS certificate: %s", exc)
            return None
        if fingerprint is not None:
            log.info("HTTPS certificate issued again for %s.local", unique_name)
        return fingerprint
