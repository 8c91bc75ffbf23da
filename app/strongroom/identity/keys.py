"""Every key of the box, derived from the 32-byte identity entropy.

One KDF call per key, each with its own ASCII domain label, so no key can be computed
from another and a new key can be added later without changing the existing ones:

    key = BLAKE2b(message = label,
                  key = entropy (32 bytes),
                  salt = 16 zero bytes,
                  personal = b"strongroom-v1" + 3 zero bytes,
                  digest_size = 32)

This is libsodium's crypto_generichash_blake2b_salt_personal. docs/identity.md is the
normative description, with test vectors, for the phone apps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import nacl.bindings
import nacl.public
import nacl.signing

from .words import ENTROPY_BYTES

PERSONALIZATION = b"strongroom-v1"
KEY_BYTES = 32
FINGERPRINT_BYTES = 16

LABEL_SIGNING_SEED = b"ed25519-signing-seed"
LABEL_NOISE_STATIC = b"x25519-noise-static"
LABEL_ARCHIVE_KEY = b"sqlcipher-archive-key"
LABEL_BLOB_KEY = b"blob-encryption-key"
LABEL_BACKUP_KEY = b"backup-encryption-key"
LABEL_WEB_SESSION = b"web-session-secret"
LABEL_FINGERPRINT = b"box-fingerprint"


def derive_subkey(entropy: bytes, label: bytes, size: int = KEY_BYTES) -> bytes:
    """BLAKE2b(label) keyed with the entropy, personalised "strongroom-v1", salt all zero."""
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"entropy must be {ENTROPY_BYTES} bytes, got {len(entropy)}")
    return nacl.bindings.crypto_generichash_blake2b_salt_personal(
        label, digest_size=size, key=bytes(entropy), person=PERSONALIZATION
    )


def compute_fingerprint(noise_static_public: bytes, signing_public: bytes) -> str:
    """Short public name of a box: anyone holding its two public keys can recompute it.

    BLAKE2b-128, unkeyed, personalised "strongroom-v1", over
    label "box-fingerprint" || Noise static public key (32) || Ed25519 public key (32),
    written as 8 groups of 4 lowercase hex digits joined by "-".
    """
    if len(noise_static_public) != KEY_BYTES or len(signing_public) != KEY_BYTES:
        raise ValueError("both public keys must be 32 bytes")
    digest = nacl.bindings.crypto_generichash_blake2b_salt_personal(
        LABEL_FINGERPRINT + noise_static_public + signing_public,
        digest_size=FINGERPRINT_BYTES,
        person=PERSONALIZATION,
    )
    text = digest.hex()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


@dataclass(frozen=True)
class BoxKeys:
    """The box's keys. Secrets are kept out of repr() so they never reach a log line."""

    signing_key: nacl.signing.SigningKey = field(repr=False)
    noise_static_private: bytes = field(repr=False)
    noise_static_public: bytes
    archive_key: bytes = field(repr=False)
    blob_key: bytes = field(repr=False)
    backup_key: bytes = field(repr=False)
    web_session_secret: bytes = field(repr=False)
    fingerprint: str
    # Kept while the box is unlocked so an admin can seal a keystore slot for another
    # admin (docs/identity.md §4); every key above derives from it anyway.
    entropy: bytes = field(default=b"", repr=False)

    @property
    def signing_public(self) -> bytes:
        """Ed25519 public key (32 bytes) that verifies tree heads and certificates."""
        return bytes(self.signing_key.verify_key)

    @property
    def noise_private_key(self) -> nacl.public.PrivateKey:
        return nacl.public.PrivateKey(self.noise_static_private)

    def sqlcipher_key_pragma(self) -> str:
        """Raw-key form for `PRAGMA key = "x'…'"`: SQLCipher skips its own PBKDF2."""
        return f"x'{self.archive_key.hex()}'"


def derive_box_keys(entropy: bytes) -> BoxKeys:
    """All keys of the box; the same entropy gives the same keys, byte for byte."""
    signing_key = nacl.signing.SigningKey(derive_subkey(entropy, LABEL_SIGNING_SEED))
    # The raw 32 bytes are the X25519 private key; X25519 clamps them itself (RFC 7748).
    noise_private = derive_subkey(entropy, LABEL_NOISE_STATIC)
    noise_public = nacl.bindings.crypto_scalarmult_base(noise_private)
    return BoxKeys(
        signing_key=signing_key,
        noise_static_private=noise_private,
        noise_static_public=noise_public,
        archive_key=derive_subkey(entropy, LABEL_ARCHIVE_KEY),
        blob_key=derive_subkey(entropy, LABEL_BLOB_KEY),
        backup_key=derive_subkey(entropy, LABEL_BACKUP_KEY),
        web_session_secret=derive_subkey(entropy, LABEL_WEB_SESSION),
        fingerprint=compute_fingerprint(noise_public, bytes(signing_key.verify_key)),
        entropy=bytes(entropy),
    )
