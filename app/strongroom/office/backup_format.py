"""The on-disk format of backup sets, and its cryptography (PyNaCl only).

A backup target directory holds::

    pool/<xx>/<file>            attachment blob files, copied as they are (already
                                encrypted under the box blob key); shared by sets
    set-<UTC time>/HEADER.json  {"format", "key_check"}: the only clear text
    set-<UTC time>/manifest.enc SecretBox(manifest key, Ed25519 sig || manifest JSON)
    set-<UTC time>/archive.db.enc  the SQLCipher snapshot, in a secretstream

Keys: the backup key (derived from the 24 words) is split with keyed BLAKE2b
into a stream key, a manifest key and a public key check; so a wrong set of
words is told apart from a damaged backup without decrypting anything.
The database stream is libsodium's crypto_secretstream_xchacha20poly1305 in
64 KiB chunks, each framed by a 4-byte length; the last chunk carries the FINAL
tag, so truncation, reordering and appended bytes are all detected.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

import nacl.hashlib
import nacl.secret
import nacl.utils
from nacl.bindings import (
    crypto_generichash_blake2b_salt_personal,
    crypto_secretstream_xchacha20poly1305_ABYTES,
    crypto_secretstream_xchacha20poly1305_HEADERBYTES,
    crypto_secretstream_xchacha20poly1305_init_pull,
    crypto_secretstream_xchacha20poly1305_init_push,
    crypto_secretstream_xchacha20poly1305_pull,
    crypto_secretstream_xchacha20poly1305_push,
    crypto_secretstream_xchacha20poly1305_state,
    crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE,
)
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from strongroom.office.errors import BackupCorrupted

FORMAT = "strongroom-backup-v1"
HEADER_FILE = "HEADER.json"
MANIFEST_FILE = "manifest.enc"
DB_FILE = "archive.db.enc"
POOL_DIR = "pool"
SET_PREFIX = "set-"
STREAM_MAGIC = b"strongroom-bkdb1"  # 16 bytes
STREAM_CHUNK = 64 * 1024
_PERSON = b"strongroom-bkup1"  # 16 bytes: BLAKE2b personalisation
_AD = b"strongroom-backup-db-v1"

Progress = Callable[[str, int, int], None]


def _subkey(backup_key: bytes, label: bytes) -> bytes:
    return crypto_generichash_blake2b_salt_personal(
        label, digest_size=32, key=backup_key, person=_PERSON
    )


def stream_key(backup_key: bytes) -> bytes:
    return _subkey(backup_key, b"database-stream")


def manifest_key(backup_key: bytes) -> bytes:
    return _subkey(backup_key, b"manifest-box")


def key_check(backup_key: bytes) -> str:
    """A public value that says whether a key is the one this backup was made with."""
    return _subkey(backup_key, b"key-check").hex()


def file_digest(handle: BinaryIO) -> str:
    digest = nacl.hashlib.blake2b(digest_size=32)
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return str(digest.hexdigest())


def encrypt_stream(
    source: BinaryIO, target: BinaryIO, key: bytes, total: int, progress: Progress
) -> None:
    state = crypto_secretstream_xchacha20poly1305_state()
    target.write(STREAM_MAGIC)
    target.write(crypto_secretstream_xchacha20poly1305_init_push(state, key))
    done = 0
    chunk = source.read(STREAM_CHUNK)
    while True:
        following = source.read(STREAM_CHUNK)
        tag = (
            crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
            if following
            else crypto_secretstream_xchacha20poly1305_TAG_FINAL
        )
        sealed = crypto_secretstream_xchacha20poly1305_push(state, chunk, _AD, tag)
        target.write(struct.pack("<I", len(sealed)))
        target.write(sealed)
        done += len(chunk)
        progress("database", done, total)
        if not following:
            return
        chunk = following


def decrypt_stream(source: BinaryIO, target: BinaryIO, key: bytes, name: str) -> None:
    """Decrypt into target; raise BackupCorrupted naming `name` on any damage."""
    if source.read(len(STREAM_MAGIC)) != STREAM_MAGIC:
        raise BackupCorrupted(f"{name} is not a Strongroom database stream")
    header = source.read(crypto_secretstream_xchacha20poly1305_HEADERBYTES)
    state = crypto_secretstream_xchacha20poly1305_state()
    try:
        crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
    except (CryptoError, ValueError) as exc:
        raise BackupCorrupted(f"{name} is truncated (no stream header)") from exc
    index = 0
    while True:
        length_bytes = source.read(4)
        if len(length_bytes) != 4:
            raise BackupCorrupted(f"{name} is truncated after chunk {index}")
        (length,) = struct.unpack("<I", length_bytes)
        if length > STREAM_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES:
            raise BackupCorrupted(f"{name}: chunk {index} has an impossible length")
        sealed = source.read(length)
        if len(sealed) != length:
            raise BackupCorrupted(f"{name} is truncated in chunk {index}")
        try:
            plain, tag = crypto_secretstream_xchacha20poly1305_pull(state, sealed, _AD)
        except (CryptoError, ValueError) as exc:
            raise BackupCorrupted(f"{name}: chunk {index} fails to authenticate") from exc
        target.write(plain)
        index += 1
        if tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL:
            if source.read(1):
                raise BackupCorrupted(f"{name} has bytes after its final chunk")
            return


def seal_manifest(document: dict[str, Any], signing_key: SigningKey, backup_key: bytes) -> bytes:
    body = json.dumps(document, sort_keys=True).encode()
    signed = signing_key.sign(body).signature + body
    box = nacl.secret.SecretBox(manifest_key(backup_key))
    return bytes(box.encrypt(signed, nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)))


def open_manifest(sealed: bytes, backup_key: bytes, verify_key: VerifyKey) -> dict[str, Any]:
    try:
        signed = nacl.secret.SecretBox(manifest_key(backup_key)).decrypt(sealed)
    except (CryptoError, ValueError) as exc:
        raise BackupCorrupted(f"{MANIFEST_FILE} is damaged (it fails to decrypt)") from exc
    try:
        verify_key.verify(signed[64:], signed[:64])
    except BadSignatureError as exc:
        raise BackupCorrupted(f"{MANIFEST_FILE} is not signed by this box") from exc
    document = json.loads(signed[64:])
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupCorrupted(f"{MANIFEST_FILE} is not a {FORMAT} manifest")
    return document


def header_document(backup_key: bytes) -> bytes:
    return json.dumps({"format": FORMAT, "key_check": key_check(backup_key)}).encode() + b"\n"
