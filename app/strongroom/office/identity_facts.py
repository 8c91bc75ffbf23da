"""The box's two public fingerprints, each named for its use.

- The signing key fingerprint: SHA-256 of box.pem's DER public key, exactly
  what `openssl pkey -pubin -in box.pem -outform DER | sha256sum` prints. It
  is what a court expert compares with the key inside a sealed export.
- The protocol fingerprint: the short BLAKE2b name of the box's Noise and
  signing keys that phones check when they pair and connect (docs/identity.md).

Both are public. The web Identity page, the page footers, `strongroom
fingerprint` and VERIFY.txt use the same labels (office.verify_text).
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.identity import BoxKeys
from strongroom.office.sealed import box_key_fingerprint
from strongroom.proof.pem import ed25519_public_key_pem

OPENSSL_FINGERPRINT_CMD = "openssl pkey -pubin -in box.pem -outform DER | sha256sum"


@dataclass(frozen=True)
class IdentityFacts:
    signing_fingerprint: str  # 64 lowercase hex digits
    protocol_fingerprint: str  # xxxx-xxxx-… (8 groups)
    box_pem: str  # the signing public key, as sealed bundles hold it

    @classmethod
    def of(cls, keys: BoxKeys) -> IdentityFacts:
        public = keys.signing_public
        return cls(box_key_fingerprint(public), keys.fingerprint, ed25519_public_key_pem(public))

    def as_json(self) -> dict[str, str]:
        return {
            "signing_fingerprint": self.signing_fingerprint,
            "protocol_fingerprint": self.protocol_fingerprint,
            "box_pem": self.box_pem,
        }
