"""Encrypted, content-addressed attachment blobs on disk.

A blob file is a sequence of chunks, each CHUNK_BYTES of plaintext sealed with
XChaCha20-Poly1305 (PyNaCl). Chunk i uses nonce = i (little-endian, padded)
and associated data binding the index and whether it is the last chunk, so
chunks cannot be reordered, dropped or truncated without detection. Every
file has its own key, derived from the box's blob key and a random salt kept
in the (encrypted) database. Plaintext never touches the disk, not even while
an upload is partial: partial files hold whole sealed chunks only, and an
upload resumes at the last whole chunk.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_ABYTES,
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_generichash_blake2b_salt_personal,
)
from nacl.exceptions import CryptoError

from strongroom.archive.errors import BlobError
from strongroom.durable import fsync_dir

CHUNK_BYTES = 64 * 1024
SEALED_CHUNK_BYTES = CHUNK_BYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES
SALT_BYTES = 16
_PERSON = b"strongroom-blob1"  # 16 bytes: BLAKE2b personalisation


def _chunk_nonce(index: int) -> bytes:
    return struct.pack("<Q", index) + bytes(16)


def _chunk_aad(index: int, final: bool) -> bytes:
    return b"strongroom-blob-v1" + struct.pack("<QB", index, 1 if final else 0)


def file_key(blob_key: bytes, salt: bytes) -> bytes:
    """The key of one blob file, from the box blob key and the file's salt."""
    return crypto_generichash_blake2b_salt_personal(
        b"", digest_size=32, key=blob_key, salt=salt, person=_PERSON
    )


def chunk_count(size: int) -> int:
    """A blob always has at least one chunk (an empty file is one empty final chunk)."""
    return max(1, -(-size // CHUNK_BYTES))


@dataclass(frozen=True)
class BlobLocation:
    file_name: str
    salt: bytes


class BlobStore:
    """Files under `root/`, complete ones in xx/ fan-out dirs, partial ones in partial/."""

    def __init__(self, root: Path, blob_key: bytes) -> None:
        self.root = root
        self._blob_key = blob_key
        self.partial_dir = root / "partial"
        self.partial_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def new_location(self) -> BlobLocation:
        # A random file name: the name of a file must not reveal its content hash.
        return BlobLocation(secrets.token_hex(16), secrets.token_bytes(SALT_BYTES))

    def path_for(self, file_name: str) -> Path:
        if len(file_name) != 32 or not all(c in "0123456789abcdef" for c in file_name):
            raise BlobError(f"invalid blob file name {file_name!r}")
        return self.root / file_name[:2] / file_name

    def partial_path(self, file_name: str) -> Path:
        self.path_for(file_name)  # validates the name
        return self.partial_dir / file_name

    def start_upload(self, location: BlobLocation, size: int, sha256: bytes) -> BlobUpload:
        """Start or resume an upload of `size` bytes expected to hash to `sha256`."""
        path = self.partial_path(location.file_name)
        return BlobUpload(path, file_key(self._blob_key, location.salt), size, sha256)

    def complete(self, upload: BlobUpload, location: BlobLocation) -> Path:
        """Move a finished, verified upload into place durably."""
        final = self.path_for(location.file_name)
        final.parent.mkdir(exist_ok=True, mode=0o700)
        os.replace(upload.path, final)
        fsync_dir(final.parent)
        fsync_dir(self.partial_dir)
        return final

    def read_chunks(self, location: BlobLocation, size: int) -> Iterator[bytes]:
        """Decrypt a stored blob chunk by chunk; raise BlobError on any tampering."""
        path = self.path_for(location.file_name)
        key = file_key(self._blob_key, location.salt)
        return _decrypt_file(path, key, size)

    def verify(self, location: BlobLocation, size: int, sha256: bytes) -> None:
        digest = hashlib.sha256()
        for chunk in self.read_chunks(location, size):
            digest.update(chunk)
        if digest.digest() != sha256:
            raise BlobError(f"blob {sha256.hex()[:16]}… does not match its hash")

    def delete(self, file_name: str) -> None:
        for path in (self.path_for(file_name), self.partial_path(file_name)):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            fsync_dir(path.parent)


def _decrypt_file(path: Path, key: bytes, size: int) -> Iterator[bytes]:
    total = chunk_count(size)
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise BlobError(f"blob file {path.name} is missing") from exc
    with handle:
        remaining = size
        for index in range(total):
            final = index == total - 1
            expected_plain = min(CHUNK_BYTES, remaining)
            # Read exactly the chunk's sealed length, so bytes appended after a
            # short last chunk are reported as trailing, not as a truncation.
            sealed = handle.read(expected_plain + crypto_aead_xchacha20poly1305_ietf_ABYTES)
            if len(sealed) != expected_plain + crypto_aead_xchacha20poly1305_ietf_ABYTES:
                raise BlobError(f"blob file {path.name} is truncated at chunk {index}")
            try:
                plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
                    sealed, _chunk_aad(index, final), _chunk_nonce(index), key
                )
            except CryptoError as exc:
                raise BlobError(
                    f"blob file {path.name}: chunk {index} fails to authenticate"
                ) from exc
            remaining -= len(plain)
            yield plain
        if handle.read(1):
            raise BlobError(f"blob file {path.name} has trailing bytes")


class BlobUpload:
    """One attachment being received: feed bytes in order, then finish()."""

    def __init__(self, path: Path, key: bytes, size: int, sha256: bytes) -> None:
        if size < 0:
            raise BlobError("negative blob size")
        self.path = path
        self.size = size
        self.expected_sha256 = sha256
        self._key = key
        self._digest = hashlib.sha256()
        self._pending = bytearray()
        self._chunks_written = 0
        self._chunks_durable = 0
        self._total_chunks = chunk_count(size)
        self._resume()
        self._file = self.path.open("ab")

    def _resume(self) -> None:
        """Keep the whole sealed chunks already on disk; rehash them to continue."""
        if not self.path.exists():
            return
        whole = self.path.stat().st_size // SEALED_CHUNK_BYTES
        whole = min(whole, self._total_chunks - 1)  # the final chunk is never resumed
        with self.path.open("r+b") as handle:
            handle.truncate(whole * SEALED_CHUNK_BYTES)
            for index in range(whole):
                sealed = handle.read(SEALED_CHUNK_BYTES)
                try:
                    plain = crypto_aead_xchacha20poly1305_ietf_decrypt(
                        sealed, _chunk_aad(index, False), _chunk_nonce(index), self._key
                    )
                except CryptoError:
                    # A damaged partial chunk: keep what authenticated, redo the rest.
                    handle.truncate(index * SEALED_CHUNK_BYTES)
                    whole = index
                    break
                self._digest.update(plain)
        self._chunks_written = self._chunks_durable = whole

    @property
    def offset(self) -> int:
        """How many plaintext bytes are safely stored (the resume point)."""
        return self._chunks_written * CHUNK_BYTES + len(self._pending)

    @property
    def durable_offset(self) -> int:
        """Plaintext bytes that survive a crash: whole chunks fsynced by flush()."""
        return self._chunks_durable * CHUNK_BYTES

    def write(self, data: bytes) -> None:
        if self.offset + len(data) > self.size:
            raise BlobError("more bytes than the announced attachment size")
        self._pending += data
        while len(self._pending) >= CHUNK_BYTES and self._chunks_written < self._total_chunks - 1:
            self._seal(bytes(self._pending[:CHUNK_BYTES]), final=False)
            del self._pending[:CHUNK_BYTES]

    def _seal(self, plain: bytes, *, final: bool) -> None:
        index = self._chunks_written
        self._digest.update(plain)
        self._file.write(
            crypto_aead_xchacha20poly1305_ietf_encrypt(
                plain, _chunk_aad(index, final), _chunk_nonce(index), self._key
            )
        )
        self._chunks_written += 1

    def flush(self) -> None:
        """Make the whole chunks written so far durable (resume point survives a crash)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._chunks_durable = self._chunks_written

    def finish(self) -> None:
        """Seal the last chunk, check the hash, fsync. Raise BlobError on mismatch."""
        if self.offset != self.size:
            raise BlobError(f"attachment incomplete: {self.offset} of {self.size} bytes")
        self._seal(bytes(self._pending), final=True)
        self._pending.clear()
        self.flush()
        self._file.close()
        if self._digest.digest() != self.expected_sha256:
            self.path.unlink(missing_ok=True)
            raise BlobError("attachment bytes do not match the announced SHA-256")

    def abort(self) -> None:
        """Stop writing but keep the whole chunks for a later resume."""
        if not self._file.closed:
            self.flush()
            self._file.close()
