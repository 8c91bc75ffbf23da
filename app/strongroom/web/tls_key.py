"""The HTTPS key's fingerprint: SHA-256 of the certificate's SubjectPublicKeyInfo.

The certificate's own fingerprint changes each time it is issued again (new
serial, new validity: at first set-up, when the box is renamed), although the
key does not (web/tls.py keeps it). The SHA-256 of the public key as DER
(SubjectPublicKeyInfo, what HPKP and browsers call the "public key" fingerprint)
stays the same across those re-issues: it is what the recovery sheet prints and
what a person compares with, in the browser's certificate viewer or with

    openssl s_client -connect HOST:443 -servername HOST </dev/null 2>/dev/null \
      | openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum

It changes only with the key: a new box (a restore onto new hardware) has its own.
Read from the certificate, not the private key, so anyone who may read box.crt can
compute it. Parsing stops at the SubjectPublicKeyInfo; no signature is checked
here (the certificate is the box's own file).
"""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

from strongroom.web.tls import CERT_NAME

_SEQUENCE = 0x30
_VERSION = 0xA0  # [0] EXPLICIT, present in v3 certificates


class MalformedCertificate(ValueError):
    pass


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the contents, end of the element) of the DER element at `at`."""
    if at + 2 > len(der):
        raise MalformedCertificate("cut short")
    tag, first = der[at], der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or at + count > len(der):
            raise MalformedCertificate("bad length")
        length = int.from_bytes(der[at : at + count], "big")
        at += count
    if at + length > len(der):
        raise MalformedCertificate("cut short")
    return tag, at, at + length


def subject_public_key_info(certificate_der: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 §4.1)."""
    tag, inside, _ = _element(certificate_der, 0)
    if tag != _SEQUENCE:
        raise MalformedCertificate("not a certificate")
    tag, at, _ = _element(certificate_der, inside)  # tbsCertificate
    if tag != _SEQUENCE:
        raise MalformedCertificate("no tbsCertificate")
    if certificate_der[at] == _VERSION:
        at = _element(certificate_der, at)[2]
    # serialNumber, signature, issuer, validity, subject: then the key.
    for _ in range(5):
        at = _element(certificate_der, at)[2]
    tag, _, end = _element(certificate_der, at)
    if tag != _SEQUENCE:
        raise MalformedCertificate("no subjectPublicKeyInfo")
    return certificate_der[at:end]


def key_fingerprint_of(cert_path: Path) -> str:
    """64 lowercase hex digits, as `sha256sum` prints them (see the module doc)."""
    der = ssl.PEM_cert_to_DER_cert(cert_path.read_text("ascii"))
    return hashlib.sha256(subject_public_key_info(der)).hexdigest()


def certificate_key_fingerprint(tls_dir: Path) -> str | None:
    """The box certificate's key fingerprint, or None if there is no certificate yet."""
    try:
        return key_fingerprint_of(tls_dir / CERT_NAME)
    except (OSError, ValueError):
        return None
