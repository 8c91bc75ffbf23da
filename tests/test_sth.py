"""Signed tree heads and the box's PEM public key, checked by PyNaCl and by the real openssl."""

import base64
import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import nacl.signing
import pytest

from strongroom.proof.merkle import MemoryNodeStore, MerkleLog, leaf_hash
from strongroom.proof.pem import (
    MalformedPublicKeyError,
    ed25519_public_key_from_pem,
    ed25519_public_key_pem,
)
from strongroom.proof.sth import (
    MalformedTreeHeadError,
    SignedTreeHead,
    sign_tree_head,
    tree_head_message,
    verify_tree_head,
)

SEED = bytes(range(100, 132))
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
TIMESTAMP_MS = 1_700_000_000_123


@pytest.fixture
def box_key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(SEED)


@pytest.fixture
def sth(box_key: nacl.signing.SigningKey) -> SignedTreeHead:
    return sign_tree_head(box_key, 8, ROOT, TIMESTAMP_MS)


def public(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def flip(value: bytes, position: int) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x80]) + value[position + 1 :]


# ---------------------------------------------------------------- the signed text


def test_signed_bytes_are_the_documented_text() -> None:
    assert tree_head_message(8, TIMESTAMP_MS, ROOT) == (
        b"strongroom-sth-v1\n8\n1700000000123\n"
        b"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328\n"
    )
    assert tree_head_message(0, 0, bytes(32)) == b"strongroom-sth-v1\n0\n0\n" + b"0" * 64 + b"\n"


def test_signature_is_plain_ed25519_over_the_text(
    box_key: nacl.signing.SigningKey, sth: SignedTreeHead
) -> None:
    message = sth.signed_message()
    assert message == tree_head_message(8, TIMESTAMP_MS, ROOT)
    assert box_key.verify_key.verify(message, sth.signature) == message


# ---------------------------------------------------------------- sign / verify


def test_signed_tree_head_verifies(box_key: nacl.signing.SigningKey) -> None:
    log = MerkleLog(MemoryNodeStore())
    log.append_many(leaf_hash(b"record %d" % i) for i in range(21))
    head = sign_tree_head(box_key, log.size, log.root(), TIMESTAMP_MS)
    assert (head.tree_size, head.root_hash, head.timestamp_ms) == (21, log.root(), TIMESTAMP_MS)
    assert verify_tree_head(head, public(box_key))


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 9},
        {"tree_size": 7},
        {"root_hash": flip(ROOT, 0)},
        {"root_hash": flip(ROOT, 31)},
        {"timestamp_ms": TIMESTAMP_MS + 1},
        {"timestamp_ms": 0},
    ],
)
def test_any_change_to_the_head_breaks_the_signature(
    box_key: nacl.signing.SigningKey, sth: SignedTreeHead, change: dict[str, object]
) -> None:
    assert not verify_tree_head(dataclasses.replace(sth, **change), public(box_key))  # type: ignore[arg-type]


@pytest.mark.parametrize("position", [0, 31, 32, 63])
def test_a_changed_signature_fails(
    box_key: nacl.signing.SigningKey, sth: SignedTreeHead, position: int
) -> None:
    bent = dataclasses.replace(sth, signature=flip(sth.signature, position))
    assert not verify_tree_head(bent, public(box_key))


def test_another_key_or_a_malformed_key_fails(sth: SignedTreeHead) -> None:
    other = nacl.signing.SigningKey(bytes(32))
    assert not verify_tree_head(sth, public(other))
    assert not verify_tree_head(sth, b"\x01" * 31)
    assert not verify_tree_head(sth, b"")


@pytest.mark.parametrize(
    "fields",
    [
        {"tree_size": -1},
        {"tree_size": True},
        {"tree_size": 1.0},
        {"timestamp_ms": -5},
        {"root_hash": ROOT[:31]},
        {"root_hash": ROOT.hex()},
        {"signature": bytes(63)},
    ],
)
def test_malformed_heads_cannot_be_built(sth: SignedTreeHead, fields: dict[str, object]) -> None:
    with pytest.raises(MalformedTreeHeadError):
        dataclasses.replace(sth, **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- dict / JSON / CBOR


def test_dict_form_uses_integers_and_lowercase_hex(sth: SignedTreeHead) -> None:
    assert sth.to_dict() == {
        "tree_size": 8,
        "timestamp_ms": TIMESTAMP_MS,
        "root_hash": ROOT.hex(),
        "signature": sth.signature.hex(),
    }


def test_head_survives_json_and_cbor(box_key: nacl.signing.SigningKey, sth: SignedTreeHead) -> None:
    via_json = SignedTreeHead.from_dict(json.loads(json.dumps(sth.to_dict())))
    via_cbor = SignedTreeHead.from_dict(cbor2.loads(cbor2.dumps(sth.to_dict(), canonical=True)))
    assert via_json == via_cbor == sth
    assert verify_tree_head(via_json, public(box_key))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: {k: v for k, v in d.items() if k != "signature"},
        lambda d: {**d, "key_id": "00"},
        lambda d: {**d, "tree_size": "8"},
        lambda d: {**d, "tree_size": -8},
        lambda d: {**d, "tree_size": True},
        lambda d: {**d, "timestamp_ms": 1.5},
        lambda d: {**d, "root_hash": d["root_hash"].upper()},
        lambda d: {**d, "root_hash": d["root_hash"][:-2]},
        lambda d: {**d, "root_hash": "zz" + d["root_hash"][2:]},
        lambda d: {**d, "signature": d["signature"] + "00"},
        lambda d: {**d, "signature": bytes.fromhex(d["signature"])},
        lambda d: [d],
    ],
)
def test_from_dict_refuses_anything_but_the_documented_form(
    sth: SignedTreeHead, mangle: Callable[[dict[str, Any]], object]
) -> None:
    with pytest.raises(MalformedTreeHeadError):
        SignedTreeHead.from_dict(mangle(sth.to_dict()))


# ---------------------------------------------------------------- PEM


def test_pem_round_trip_and_layout(box_key: nacl.signing.SigningKey) -> None:
    pem = ed25519_public_key_pem(public(box_key))
    lines = pem.split("\n")
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[2:] == ["-----END PUBLIC KEY-----", ""]
    der = base64.b64decode(lines[1])
    assert der == bytes.fromhex("302a300506032b6570032100") + public(box_key)
    assert ed25519_public_key_from_pem(pem) == public(box_key)
    assert ed25519_public_key_from_pem(pem.replace("\n", "\r\n")) == public(box_key)
    body = lines[1]
    wrapped = f"{lines[0]}\n{body[:30]}\n{body[30:]}\n{lines[2]}"
    assert ed25519_public_key_from_pem(wrapped) == public(box_key)


def test_pem_refuses_wrong_key_lengths() -> None:
    with pytest.raises(MalformedPublicKeyError):
        ed25519_public_key_pem(bytes(31))


def _pem_of(der: bytes, label: str = "PUBLIC KEY") -> str:
    body = base64.b64encode(der).decode()
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        _pem_of(bytes.fromhex("302a300506032b656e032100") + bytes(32)),  # X25519, not Ed25519
        _pem_of(bytes.fromhex("302a300506032b6570032100") + bytes(31)),
        _pem_of(bytes.fromhex("302a300506032b6570032100") + bytes(33)),
        _pem_of(bytes.fromhex("302e020100300506032b657004220420") + bytes(32), "PRIVATE KEY"),
        _pem_of(bytes.fromhex("302a300506032b6570032100") + bytes(32), "CERTIFICATE"),
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA!!!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nProc-Type: 4,ENCRYPTED\n-----END PUBLIC KEY-----\n",
    ],
)
def test_pem_parser_refuses_anything_but_one_ed25519_key(text: str) -> None:
    with pytest.raises(MalformedPublicKeyError):
        ed25519_public_key_from_pem(text)


def test_pem_parser_refuses_surrounding_text_and_non_canonical_base64(
    box_key: nacl.signing.SigningKey,
) -> None:
    pem = ed25519_public_key_pem(public(box_key))
    for text in (
        "key:\n" + pem,
        pem + "trailer\n",
        pem + pem,
        pem.replace("-----\n", "-----\n ", 1),
    ):
        with pytest.raises(MalformedPublicKeyError):
            ed25519_public_key_from_pem(text)
    # 44 bytes encode with one '=' pad; the last data character carries 2 spare bits.
    body = pem.split("\n")[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = body[-2]
    sloppy = body[:-2] + alphabet[alphabet.index(last) | 1] + "="
    assert sloppy != body and base64.b64decode(sloppy) == base64.b64decode(body)
    with pytest.raises(MalformedPublicKeyError):
        ed25519_public_key_from_pem(pem.replace(body, sloppy))


# ---------------------------------------------------------------- the real openssl


def openssl() -> str:
    path = shutil.which("openssl")
    assert path is not None, "openssl must be installed: sealed exports promise it as a verifier"
    return path


def test_pem_is_what_openssl_derives_from_the_same_private_key(
    tmp_path: Path, box_key: nacl.signing.SigningKey
) -> None:
    # PKCS#8 Ed25519 private key (RFC 8410): fixed header + the 32-byte seed.
    private = _pem_of(bytes.fromhex("302e020100300506032b657004220420") + SEED, "PRIVATE KEY")
    (tmp_path / "box.key").write_text(private)
    result = subprocess.run(
        [openssl(), "pkey", "-in", str(tmp_path / "box.key"), "-pubout"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == ed25519_public_key_pem(public(box_key))


def run_openssl_verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            openssl(),
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(directory / "box.pem"),
            "-rawin",
            "-in",
            str(directory / "sth.txt"),
            "-sigfile",
            str(directory / "sth.sig"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_openssl_verifies_a_tree_head_and_refuses_a_tampered_one(
    tmp_path: Path, box_key: nacl.signing.SigningKey, sth: SignedTreeHead
) -> None:
    (tmp_path / "box.pem").write_text(ed25519_public_key_pem(public(box_key)))
    (tmp_path / "sth.txt").write_bytes(sth.signed_message())
    (tmp_path / "sth.sig").write_bytes(sth.signature)

    good = run_openssl_verify(tmp_path)
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout

    tampered = sth.signed_message().replace(b"\n8\n", b"\n9\n")
    assert tampered != sth.signed_message()
    (tmp_path / "sth.txt").write_bytes(tampered)
    bad = run_openssl_verify(tmp_path)
    assert bad.returncode != 0
    assert "Signature Verified Successfully" not in bad.stdout

    (tmp_path / "sth.txt").write_bytes(sth.signed_message())
    (tmp_path / "sth.sig").write_bytes(flip(sth.signature, 5))
    bad_signature = run_openssl_verify(tmp_path)
    assert bad_signature.returncode != 0
    assert "Signature Verified Successfully" not in bad_signature.stdout
