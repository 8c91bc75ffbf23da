"""Key derivation: the test vectors are read from docs/identity.md, so the doc cannot drift."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import nacl.bindings
import nacl.pwhash.argon2id as argon2id
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.identity import (
    BoxKeys,
    compute_fingerprint,
    derive_box_keys,
    entropy_to_words,
    words_to_entropy,
)
from strongroom.identity.keys import (
    LABEL_ARCHIVE_KEY,
    LABEL_BACKUP_KEY,
    LABEL_BLOB_KEY,
    LABEL_NOISE_STATIC,
    LABEL_SIGNING_SEED,
    LABEL_WEB_SESSION,
)
from strongroom.identity.keystore_format import keyfile_slot_key, passphrase_bytes

DOC = Path(__file__).resolve().parent.parent / "docs" / "identity.md"
KEY_FIELDS = (
    "signing_seed",
    "signing_public",
    "noise_static_private",
    "noise_static_public",
    "archive_key",
    "blob_key",
    "backup_key",
    "web_session_secret",
)


def doc_vectors() -> dict[str, dict[str, str]]:
    """Every '### Vector: <name>' section of the doc as {field: value} from its table."""
    vectors: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### Vector: (.+)$", line)
        if heading:
            current = vectors.setdefault(heading.group(1).strip(), {})
            continue
        if line.startswith("#"):
            current = None
            continue
        row = re.match(r"^\| (\w+) \| `([^`]*)` \|$", line)
        if row and current is not None:
            current[row.group(1)] = row.group(2)
    return vectors


VECTORS = doc_vectors()
IDENTITY_VECTORS = {k: v for k, v in VECTORS.items() if "entropy" in v}


def keys_as_hex(keys: BoxKeys) -> dict[str, str]:
    return {
        "signing_seed": bytes(keys.signing_key).hex(),
        "signing_public": keys.signing_public.hex(),
        "noise_static_private": keys.noise_static_private.hex(),
        "noise_static_public": keys.noise_static_public.hex(),
        "archive_key": keys.archive_key.hex(),
        "blob_key": keys.blob_key.hex(),
        "backup_key": keys.backup_key.hex(),
        "web_session_secret": keys.web_session_secret.hex(),
    }


def test_doc_has_the_promised_vectors() -> None:
    assert set(IDENTITY_VECTORS) == {"all-zero entropy", "fixed random entropy"}
    for vector in IDENTITY_VECTORS.values():
        expected = {"entropy", "words_english", "words_french", "fingerprint", *KEY_FIELDS}
        assert expected <= set(vector)
    assert IDENTITY_VECTORS["all-zero entropy"]["entropy"] == "00" * 32


@pytest.mark.parametrize("name", sorted(IDENTITY_VECTORS))
def test_doc_vector_words(name: str) -> None:
    vector = IDENTITY_VECTORS[name]
    entropy = bytes.fromhex(vector["entropy"])
    assert " ".join(entropy_to_words(entropy, "english")) == vector["words_english"]
    assert " ".join(entropy_to_words(entropy, "french")) == vector["words_french"]
    assert words_to_entropy(vector["words_english"]) == entropy
    assert words_to_entropy(vector["words_french"]) == entropy


@pytest.mark.parametrize("name", sorted(IDENTITY_VECTORS))
def test_doc_vector_keys(name: str) -> None:
    vector = IDENTITY_VECTORS[name]
    keys = derive_box_keys(bytes.fromhex(vector["entropy"]))
    assert keys_as_hex(keys) == {field: vector[field] for field in KEY_FIELDS}
    assert keys.sqlcipher_key_pragma() == vector["sqlcipher_key_pragma"]
    assert keys.fingerprint == vector["fingerprint"]


@pytest.mark.parametrize("name", sorted(IDENTITY_VECTORS))
def test_doc_description_reproduces_the_vectors_independently(name: str) -> None:
    """A second implementation from the doc's text alone (stdlib BLAKE2b, not libsodium)."""
    vector = IDENTITY_VECTORS[name]
    entropy = bytes.fromhex(vector["entropy"])

    def subkey(label: str) -> str:
        return hashlib.blake2b(
            label.encode("ascii"), digest_size=32, key=entropy, person=b"strongroom-v1"
        ).hexdigest()

    assert subkey("ed25519-signing-seed") == vector["signing_seed"]
    assert subkey("x25519-noise-static") == vector["noise_static_private"]
    assert subkey("sqlcipher-archive-key") == vector["archive_key"]
    assert subkey("blob-encryption-key") == vector["blob_key"]
    assert subkey("backup-encryption-key") == vector["backup_key"]
    assert subkey("web-session-secret") == vector["web_session_secret"]
    signing_public = nacl.signing.SigningKey(bytes.fromhex(vector["signing_seed"])).verify_key
    assert bytes(signing_public).hex() == vector["signing_public"]
    noise_public = nacl.bindings.crypto_scalarmult_base(
        bytes.fromhex(vector["noise_static_private"])
    )
    assert noise_public.hex() == vector["noise_static_public"]
    digest = hashlib.blake2b(
        b"box-fingerprint" + noise_public + bytes(signing_public),
        digest_size=16,
        person=b"strongroom-v1",
    ).hexdigest()
    assert "-".join(digest[i : i + 4] for i in range(0, 32, 4)) == vector["fingerprint"]


def test_doc_vector_keystore_slot_keys() -> None:
    vector = VECTORS["keystore slot keys"]
    assert passphrase_bytes("Chiffre secret 2024 é").hex() == vector["passphrase_utf8_nfc"]
    slot_key = argon2id.kdf(
        32,
        bytes.fromhex(vector["passphrase_utf8_nfc"]),
        bytes.fromhex(vector["argon2id_salt"]),
        opslimit=int(vector["argon2id_opslimit"]),
        memlimit=int(vector["argon2id_memlimit"]),
    )
    assert slot_key.hex() == vector["passphrase_slot_key"]
    assert keyfile_slot_key(bytes.fromhex(vector["keyfile"])).hex() == vector["keyfile_slot_key"]


def test_doc_label_table_matches_the_code() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for label in (
        LABEL_SIGNING_SEED,
        LABEL_NOISE_STATIC,
        LABEL_ARCHIVE_KEY,
        LABEL_BLOB_KEY,
        LABEL_BACKUP_KEY,
        LABEL_WEB_SESSION,
    ):
        assert f"`{label.decode()}`" in doc


@settings(max_examples=25, deadline=None)
@given(entropy=st.binary(min_size=32, max_size=32))
def test_same_words_same_keys_and_every_key_distinct(entropy: bytes) -> None:
    words = " ".join(entropy_to_words(entropy, "french"))
    first = derive_box_keys(entropy)
    again = derive_box_keys(words_to_entropy(words))
    assert keys_as_hex(first) == keys_as_hex(again)
    assert first.fingerprint == again.fingerprint
    secrets = [v for k, v in keys_as_hex(first).items() if k != "signing_public"]
    assert len(set(secrets)) == len(secrets)


def test_different_entropy_gives_different_keys() -> None:
    one = keys_as_hex(derive_box_keys(bytes(32)))
    other = keys_as_hex(derive_box_keys(bytes(31) + b"\x01"))
    assert all(one[field] != other[field] for field in KEY_FIELDS)


def test_keys_work_for_their_purpose() -> None:
    keys = derive_box_keys(bytes(range(32)))
    signed = keys.signing_key.sign(b"tree head")
    nacl.signing.VerifyKey(keys.signing_public).verify(signed)
    assert bytes(keys.noise_private_key.public_key) == keys.noise_static_public
    assert re.fullmatch(r"x'[0-9a-f]{64}'", keys.sqlcipher_key_pragma())
    assert re.fullmatch(r"([0-9a-f]{4}-){7}[0-9a-f]{4}", keys.fingerprint)
    assert compute_fingerprint(keys.noise_static_public, keys.signing_public) == keys.fingerprint


def test_fingerprint_depends_on_both_public_keys() -> None:
    keys = derive_box_keys(bytes(32))
    other = derive_box_keys(bytes(31) + b"\x01")
    mixed_a = compute_fingerprint(keys.noise_static_public, other.signing_public)
    mixed_b = compute_fingerprint(other.noise_static_public, keys.signing_public)
    assert len({keys.fingerprint, other.fingerprint, mixed_a, mixed_b}) == 4


def test_repr_never_shows_secrets() -> None:
    keys = derive_box_keys(bytes(range(32)))
    text = repr(keys)
    for field, value in keys_as_hex(keys).items():
        if field in ("signing_public", "noise_static_public"):
            continue
        assert value not in text
        assert repr(bytes.fromhex(value)) not in text
    assert keys.fingerprint in text


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(33)])
def test_only_32_byte_entropy_is_accepted(bad: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        derive_box_keys(bad)
