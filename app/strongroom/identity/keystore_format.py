"""The keystore file, sans I/O: slots that each seal the same 32-byte entropy.

    {
      "format": "strongroom-keystore",
      "version": 2,
      "fingerprint": "<box fingerprint, public, shown while locked>",
      "slots": [
        {"type": "passphrase", "owner": "claire", "kdf": "argon2id", "opslimit": 3,
         "memlimit": 67108864, "salt": "<16 bytes hex>",
         "box": "<hex: 24-byte nonce || XSalsa20-Poly1305 ciphertext>"},
        {"type": "keyfile", "kdf": "blake2b", "box": "<hex>"}
      ]
    }

One passphrase slot per admin (at least one; owners distinct; "" is a slot whose owner
is not known yet, as every version-1 slot), at most one keyfile slot. "box" is
nacl.secret.SecretBox output (nonce prepended). Version 1 files (one passphrase slot, no
owner) are read; every write is version 2. docs/identity.md describes the format.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from .errors import KeystoreCorrupt, WrongKeyfile, WrongPassphrase
from .keys import PERSONALIZATION
from .words import ENTROPY_BYTES

FORMAT_NAME = "strongroom-keystore"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_OWNER_CHARS = 64

# ~0.1 s on a current x86 server core; estimated well under 1 s on a Raspberry Pi 4 (not
# measured here: benchmarks will confirm). 64 MiB also fits the 1 GB Pi 4 next to the service.
DEFAULT_OPSLIMIT = 3
DEFAULT_MEMLIMIT = 64 * 1024 * 1024
# Limits read from a file are bounded so a tampered file cannot make unlock allocate the
# whole RAM or spin for hours.
MAX_OPSLIMIT = 16
MAX_MEMLIMIT = 512 * 1024 * 1024

KEYFILE_BYTES = 32
LABEL_KEYFILE_SLOT = b"keystore-keyfile-slot"
_SEALED_BYTES = nacl.secret.SecretBox.NONCE_SIZE + ENTROPY_BYTES + nacl.secret.SecretBox.MACBYTES


@dataclass(frozen=True)
class PassphraseSlot:
    owner: str  # the admin's username ("" = not known yet); a hint, not authenticated
    opslimit: int
    memlimit: int
    salt: bytes
    box: bytes


@dataclass(frozen=True)
class KeyfileSlot:
    box: bytes


@dataclass(frozen=True)
class KeystoreDocument:
    fingerprint: str
    passphrase_slots: tuple[PassphraseSlot, ...]
    keyfile_slot: KeyfileSlot | None = None

    def owners(self) -> list[str]:
        return [slot.owner for slot in self.passphrase_slots]


def passphrase_bytes(passphrase: str) -> bytes:
    """NFC then UTF-8, so "é" typed as one or two code points opens the same slot."""
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def seal_with_passphrase(
    entropy: bytes, passphrase: str, *, opslimit: int, memlimit: int, owner: str = ""
) -> PassphraseSlot:
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    _check_limits(opslimit, memlimit, error=ValueError)
    salt = nacl.utils.random(argon2id.SALTBYTES)
    key = _passphrase_slot_key(passphrase, salt, opslimit, memlimit)
    box = bytes(nacl.secret.SecretBox(key).encrypt(_checked_entropy(entropy)))
    return PassphraseSlot(owner=owner, opslimit=opslimit, memlimit=memlimit, salt=salt, box=box)


def open_passphrase_slot(slot: PassphraseSlot, passphrase: str) -> bytes:
    key = _passphrase_slot_key(passphrase, slot.salt, slot.opslimit, slot.memlimit)
    try:
        return nacl.secret.SecretBox(key).decrypt(slot.box)
    except nacl.exceptions.CryptoError:
        # A wrong passphrase and a flipped ciphertext bit look the same without the key.
        raise WrongPassphrase("wrong passphrase") from None


def keyfile_slot_key(keyfile: bytes) -> bytes:
    """BLAKE2b(label "keystore-keyfile-slot", key = keyfile), personalised like the box keys."""
    if len(keyfile) != KEYFILE_BYTES:
        raise WrongKeyfile(f"a keyfile holds {KEYFILE_BYTES} bytes, this one {len(keyfile)}")
    return nacl.bindings.crypto_generichash_blake2b_salt_personal(
        LABEL_KEYFILE_SLOT, digest_size=32, key=keyfile, person=PERSONALIZATION
    )


def seal_with_keyfile(entropy: bytes, keyfile: bytes) -> KeyfileSlot:
    box = nacl.secret.SecretBox(keyfile_slot_key(keyfile)).encrypt(_checked_entropy(entropy))
    return KeyfileSlot(box=bytes(box))


def open_keyfile_slot(slot: KeyfileSlot, keyfile: bytes) -> bytes:
    try:
        return nacl.secret.SecretBox(keyfile_slot_key(keyfile)).decrypt(slot.box)
    except nacl.exceptions.CryptoError:
        raise WrongKeyfile("this keyfile does not open the keystore") from None


def encode(document: KeystoreDocument) -> bytes:
    slots: list[dict[str, Any]] = [
        {
            "type": "passphrase",
            "owner": p.owner,
            "kdf": "argon2id",
            "opslimit": p.opslimit,
            "memlimit": p.memlimit,
            "salt": p.salt.hex(),
            "box": p.box.hex(),
        }
        for p in document.passphrase_slots
    ]
    if document.keyfile_slot is not None:
        slots.append({"type": "keyfile", "kdf": "blake2b", "box": document.keyfile_slot.box.hex()})
    body = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fingerprint": document.fingerprint,
        "slots": slots,
    }
    return (json.dumps(body, indent=2) + "\n").encode("utf-8")


def decode(raw: bytes) -> KeystoreDocument:
    """Parse and validate a keystore file; any deviation raises KeystoreCorrupt."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreCorrupt(f"keystore is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
        raise KeystoreCorrupt("not a Strongroom keystore")
    version = body.get("version")
    if version not in READABLE_VERSIONS or type(version) is not int:
        raise KeystoreCorrupt(f"unsupported keystore version {version!r}")
    fingerprint = body.get("fingerprint")
    slots = body.get("slots")
    if not isinstance(fingerprint, str) or not isinstance(slots, list):
        raise KeystoreCorrupt("keystore lacks a fingerprint or slots")
    passphrase_slots = [
        _decode_passphrase_slot(s, version) for s in slots if _slot_type(s) == "passphrase"
    ]
    keyfile_slots = [_decode_keyfile_slot(s) for s in slots if _slot_type(s) == "keyfile"]
    if version == 1 and len(passphrase_slots) != 1:
        raise KeystoreCorrupt("a version 1 keystore has exactly one passphrase slot")
    if not passphrase_slots or len(keyfile_slots) > 1:
        raise KeystoreCorrupt("a keystore has passphrase slots and at most one keyfile slot")
    owners = [slot.owner for slot in passphrase_slots]
    if len(set(owners)) != len(owners):
        raise KeystoreCorrupt("two passphrase slots have the same owner")
    if len(passphrase_slots) + len(keyfile_slots) != len(slots):
        raise KeystoreCorrupt("keystore has a slot of unknown type")
    return KeystoreDocument(
        fingerprint=fingerprint,
        passphrase_slots=tuple(passphrase_slots),
        keyfile_slot=keyfile_slots[0] if keyfile_slots else None,
    )


def _slot_type(slot: object) -> object:
    if not isinstance(slot, dict):
        raise KeystoreCorrupt("keystore slot is not an object")
    return slot.get("type")


def _decode_passphrase_slot(slot: dict[str, Any], version: int) -> PassphraseSlot:
    owner = slot.get("owner", "") if version >= 2 else ""
    if not isinstance(owner, str) or len(owner) > MAX_OWNER_CHARS:
        raise KeystoreCorrupt("passphrase slot owner must be a short string")
    if slot.get("kdf") != "argon2id":
        raise KeystoreCorrupt(f"unsupported passphrase KDF {slot.get('kdf')!r}")
    opslimit, memlimit = slot.get("opslimit"), slot.get("memlimit")
    if type(opslimit) is not int or type(memlimit) is not int:
        raise KeystoreCorrupt("passphrase slot limits must be integers")
    _check_limits(opslimit, memlimit, error=KeystoreCorrupt)
    return PassphraseSlot(
        owner=owner,
        opslimit=opslimit,
        memlimit=memlimit,
        salt=_hex_field(slot, "salt", argon2id.SALTBYTES),
        box=_hex_field(slot, "box", _SEALED_BYTES),
    )


def _decode_keyfile_slot(slot: dict[str, Any]) -> KeyfileSlot:
    if slot.get("kdf") != "blake2b":
        raise KeystoreCorrupt(f"unsupported keyfile KDF {slot.get('kdf')!r}")
    return KeyfileSlot(box=_hex_field(slot, "box", _SEALED_BYTES))


def _hex_field(slot: dict[str, Any], name: str, size: int) -> bytes:
    value = slot.get(name)
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        data = None
    if data is None or len(data) != size:
        raise KeystoreCorrupt(f"slot field {name!r} must be {size} bytes of hex")
    return data


def _check_limits(opslimit: int, memlimit: int, *, error: type[Exception]) -> None:
    if not argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT:
        raise error(
            f"argon2id opslimit {opslimit} outside [{argon2id.OPSLIMIT_MIN}, {MAX_OPSLIMIT}]"
        )
    if not argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT:
        raise error(
            f"argon2id memlimit {memlimit} outside [{argon2id.MEMLIMIT_MIN}, {MAX_MEMLIMIT}]"
        )


def _passphrase_slot_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE,
        passphrase_bytes(passphrase),
        salt,
        opslimit=opslimit,
        memlimit=memlimit,
    )


def _checked_entropy(entropy: bytes) -> bytes:
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"entropy must be {ENTROPY_BYTES} bytes, got {len(entropy)}")
    return bytes(entropy)
