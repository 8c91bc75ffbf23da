"""Ed25519 public keys as PEM SubjectPublicKeyInfo (RFC 8410), the form openssl reads.

The DER encoding of an Ed25519 SubjectPublicKeyInfo is a fixed 12-byte header
(SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }) followed by the 32-byte
key, so it is built and parsed by prefix, without an ASN.1 library.
"""

import base64
import binascii

__all__ = [
    "ED25519_SPKI_PREFIX",
    "MalformedPublicKeyError",
    "ed25519_public_key_from_pem",
    "ed25519_public_key_pem",
]

ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
PUBLIC_KEY_SIZE = 32
_BEGIN = "-----BEGIN PUBLIC KEY-----"
_END = "-----END PUBLIC KEY-----"


class MalformedPublicKeyError(ValueError):
    """Text that is not exactly one PEM-armoured Ed25519 public key."""


def ed25519_public_key_pem(verify_key_bytes: bytes) -> str:
    """PEM text for a raw 32-byte Ed25519 public key, as ``openssl pkey -pubout`` writes it."""
    if not isinstance(verify_key_bytes, bytes) or len(verify_key_bytes) != PUBLIC_KEY_SIZE:
        raise MalformedPublicKeyError(f"an Ed25519 public key is {PUBLIC_KEY_SIZE} bytes")
    body = base64.b64encode(ED25519_SPKI_PREFIX + verify_key_bytes).decode("ascii")
    # 44 DER bytes give 60 base64 characters: one line, under PEM's 64-column limit.
    return f"{_BEGIN}\n{body}\n{_END}\n"


def ed25519_public_key_from_pem(text: str) -> bytes:
    """The raw 32-byte key from PEM text; anything but one Ed25519 SPKI block is refused.

    Accepted: LF or CRLF line ends, surrounding blank space, the base64 body
    wrapped over several lines. Refused: other key types, other armour labels,
    headers, text around the block, bad base64 or padding, wrong lengths.
    """
    lines = text.strip().replace("\r\n", "\n").split("\n")
    if len(lines) < 3 or lines[0] != _BEGIN or lines[-1] != _END:
        raise MalformedPublicKeyError("expected one '-----BEGIN PUBLIC KEY-----' block")
    body = "".join(lines[1:-1])
    if not body or any(c.isspace() for c in body):
        raise MalformedPublicKeyError("the PEM body must be base64 lines only")
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedPublicKeyError("the PEM body is not valid base64") from None
    if base64.b64encode(der).decode("ascii") != body:
        # Rejects non-canonical padding bits, so each key has exactly one PEM form.
        raise MalformedPublicKeyError("the PEM body is not canonical base64")
    if len(der) != len(ED25519_SPKI_PREFIX) + PUBLIC_KEY_SIZE or not der.startswith(
        ED25519_SPKI_PREFIX
    ):
        raise MalformedPublicKeyError("not an Ed25519 SubjectPublicKeyInfo")
    return der[len(ED25519_SPKI_PREFIX) :]
