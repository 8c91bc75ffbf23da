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
import itertools
import os
import secrets
import struct
from collections.abc import Iterator, Sequence
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
_IOV_MAX = 512  # buffers per writev call (Linux allows 1024)
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

    def read_chunks(self, location: BlobLocation, size: int, offset: int = 0) -> Iterator[bytes]:
        """Decrypt a stored blob chunk by chunk from `offset`; raise BlobError on any tampering.

        Only the chunks from the one holding `offset` are read and decrypted (the first
        one trimmed to start at `offset`), so resuming a download costs what remains.
        The final chunk is always read: its "last chunk" seal proves nothing was cut.
        """
        if not 0 <= offset <= size:
            raise ValueError(f"offset {offset} outside a blob of {size} bytes")
        path = self.path_for(location.file_name)
        key = file_key(self._blob_key, location.salt)
        return _decrypt_file(path, key, size, offset)

    def read_batches(
        self, location: BlobLocation, size: int, offset: int = 0, *, chunks: int = 8
    ) -> Iterator[list[bytes]]:
        """read_chunks, up to `chunks` at a time (one worker-thread trip per batch)."""
        return _batched(self.read_chunks(location, size, offset), chunks)

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


def _decrypt_file(path: Path, key: bytes, size: int, offset: int) -> Iterator[bytes]:
    total = chunk_count(size)
    first = min(offset // CHUNK_BYTES, total - 1)
    skip = offset - first * CHUNK_BYTES  # bytes of the first chunk before `offset`
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise BlobError(f"blob file {path.name} is missing") from exc
    with handle:
        # Chunks are fixed-size on disk, so chunk i starts at i * SEALED_CHUNK_BYTES. Its
        # nonce and associated data name its index: bytes found there that belong to
        # another place do not authenticate.
        handle.seek(first * SEALED_CHUNK_BYTES)
        remaining = size - first * CHUNK_BYTES
        for index in range(first, total):
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
            if skip:
                plain, skip = plain[skip:], 0
            yield plain
        if handle.read(1):
            raise BlobError(f"blob file {path.name} has trailing bytes")


def _batched(plain: Iterator[bytes], chunks: int) -> Iterator[list[bytes]]:
    while batch := list(itertools.islice(plain, chunks)):
        yield batch


def _write_fully(fd: int, buffers: Sequence[bytes]) -> None:
    """Write `buffers` in order with as few system calls as the kernel allows."""
    views = [memoryview(b) for b in buffers if b]
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        del views[:done]
        if written:  # a short write stopped inside this buffer
            views[0] = views[0][written:]


class BlobUpload:
    """One attachment being received: feed bytes in order, then finish().

    `write(data)` seals and writes. The two halves are also callable apart, so a
    caller can seal in one thread and write in another: `seal(data)` returns the
    sealed chunks that `data` completes (no I/O), `append(sealed)` writes them, in
    the order seal() returned them. The final chunk is sealed by finish() only.
    """

    def __init__(self, path: Path, key: bytes, size: int, sha256: bytes) -> None:
        if size < 0:
            raise BlobError("negative blob size")
        self.path = path
        self.size = size
        self.expected_sha256 = sha256
        self._key = key
        self._digest = hashlib.sha256()
        # Bytes of the chunk being filled: views of the caller's pieces, joined (one
        # copy) once the chunk is whole. A 64 KiB chunk usually spans two pieces.
        self._parts: list[memoryview] = []
        self._parts_bytes = 0
        self._chunks_sealed = 0
        self._chunks_written = 0
        self._chunks_durable = 0
        self._total_chunks = chunk_count(size)
        self._resume()
        self._file = self.path.open("ab", buffering=0)

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
        self._chunks_sealed = self._chunks_written = self._chunks_durable = whole

    @property
    def offset(self) -> int:
        """How many plaintext bytes were taken so far (the resume point at the start)."""
        return self._chunks_sealed * CHUNK_BYTES + self._parts_bytes

    @property
    def durable_offset(self) -> int:
        """Plaintext bytes that survive a crash: whole chunks fsynced by flush()."""
        return self._chunks_durable * CHUNK_BYTES

    def write(self, data: bytes) -> None:
        self.append(self.seal(data))

    def seal(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Take the attachment's next bytes; return the whole chunks they complete, sealed."""
        if self.offset + len(data) > self.size:
            raise BlobError("more bytes than the announced attachment size")
        if not isinstance(data, bytes):
            data = bytes(data)  # we keep views of it: it must not change under us
        view = memoryview(data)
        sealed: list[bytes] = []
        last = self._total_chunks - 1  # the final chunk waits for finish()
        while self._parts_bytes + len(view) >= CHUNK_BYTES and self._chunks_sealed < last:
            take = CHUNK_BYTES - self._parts_bytes
            self._parts.append(view[:take])
            view = view[take:]
            sealed.append(self._seal(b"".join(self._parts), final=False))
            self._parts.clear()
            self._parts_bytes = 0
        if view:
            self._parts.append(view)
            self._parts_bytes += len(view)
        return sealed

    def _seal(self, plain: bytes, *, final: bool) -> bytes:
        index = self._chunks_sealed
        self._digest.update(plain)
        self._chunks_sealed += 1
        return crypto_aead_xchacha20poly1305_ietf_encrypt(
            plain, _chunk_aad(index, final), _chunk_nonce(index), self._key
        )

    def append(self, sealed: Sequence[bytes]) -> None:
        """Write chunks returned by seal(), in order (one system call for the lot)."""
        _write_fully(self._file.fileno(), sealed)
        self._chunks_written += len(sealed)

    def flush(self) -> None:
        """Make the whole chunks written so far durable (resume point survives a crash)."""
        os.fsync(self._file.fileno())
        self._chunks_durable = self._chunks_written

    def finish(self) -> None:
        """Seal the last chunk, check the hash, fsync. Raise BlobError on mismatch."""
        if self.offset != self.size:
            raise BlobError(f"attachment incomplete: {self.offset} of {self.size} bytes")
        if self._chunks_written != self._chunks_sealed:
            raise BlobError("finish() before every sealed chunk was appended")
        last = self._seal(b"".join(self._parts), final=True)
        self._parts.clear()
        self._parts_bytes = 0
        self.append([last])
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
