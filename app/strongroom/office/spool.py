"""An encrypted spool: where a web export waits for its download, unreadable on disk.

The bundle is written through libsodium's secretstream (XChaCha20-Poly1305,
ordered chunks, a final tag) under a random key that lives only in the
process's memory. A power cut leaves ciphertext whose key is gone; the web app
also wipes its work directory at start. The spool is removed once downloaded
(or forgotten with its job).

File layout: the 24-byte stream header, then per chunk a 4-byte big-endian
length and the ciphertext (chunk + 17 bytes). The last chunk carries the FINAL
tag; a truncated, reordered or altered spool fails to read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import nacl.bindings as sodium

CHUNK = 1 << 16
_LENGTH = struct.Struct(">I")
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE


class SpoolError(Exception):
    """The spool is damaged, truncated or not ours."""


class SpoolWriter:
    """A write-only file object: plaintext in, ciphertext on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = sodium.crypto_secretstream_xchacha20poly1305_keygen()
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, self.key)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._file.write(header)
        self._buffer = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            self._push(bytes(self._buffer[:CHUNK]), _TAG_MESSAGE)
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        """Plaintext stays buffered until a whole chunk or close: nothing to do here."""

    def _push(self, chunk: bytes, tag: int) -> None:
        sealed = sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, None, tag)
        self._file.write(_LENGTH.pack(len(sealed)) + sealed)

    def close(self) -> None:
        """Seal the last chunk (FINAL) and close the file."""
        if self.closed:
            return
        self._push(bytes(self._buffer), _TAG_FINAL)
        self._buffer.clear()
        self._file.close()
        self.closed = True

    def discard(self) -> None:
        self._buffer.clear()
        self._file.close()
        self.closed = True
        self.path.unlink(missing_ok=True)


def read_spool(path: Path, key: bytes) -> Iterator[bytes]:
    """The plaintext, chunk by chunk; raise SpoolError if the spool was tampered with."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    with path.open("rb") as handle:
        header = handle.read(sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES)
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
        except Exception as exc:  # PyNaCl raises its own ValueError/RuntimeError types
            raise SpoolError("not a spool of this key") from exc
        while True:
            size = handle.read(_LENGTH.size)
            if len(size) != _LENGTH.size:
                raise SpoolError("the spool ends before its final chunk")
            sealed = handle.read(_LENGTH.unpack(size)[0])
            try:
                chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, sealed, None)
            except Exception as exc:  # authentication failure
                raise SpoolError("a spool chunk fails authentication") from exc
            yield chunk
            if tag == _TAG_FINAL:
                if handle.read(1):
                    raise SpoolError("bytes follow the final chunk")
                return
