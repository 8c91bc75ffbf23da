"""The container seal: the zip comment, the file's last bytes, holds the box's signature.

`SealingStream` hashes a bundle as it is written, holding back the last
SEAL_BYTES (the placeholder comment the zip ends with) and writing the
signature in their place; `seal_container` seals a finished file the same way
(no bundle of the box is made so: the tests' forgers use it), and `read_seal` and
`container_digest` are verify-export's side.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
from pathlib import Path
from typing import Protocol

from nacl.signing import SigningKey

from strongroom.office.offload import BlockPipe
from strongroom.office.verify_text import SEAL_B64_CHARS, SEAL_PREFIX_TEXT


class ByteSink(Protocol):
    """Where a bundle goes: written strictly in sequence, never read or sought."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class SealingStream:
    """A write-only sink that hashes all but the last SEAL_BYTES bytes it is given.

    zipfile writes the comment (the seal placeholder) last; it is held back
    here and replaced by the signature over the hash of everything before it.
    What the thread that made it writes (a record's small files, on the export's
    rendering thread) is hashed and written on a second thread (a BlockPipe,
    offload.py): SHA-256 of a 10,000-message export's 45 MB was 0.1 s of that
    thread's time while the box's other core idled. A streamed member's blocks come
    from its own pipe's thread already: those are hashed and written there, in line
    (the pipe drained first, so the order holds), and never wait in a second queue
    (an attachment's blocks in flight stay those of one pipe). `flush`, `seal` and
    `abandon` wait for the thread; a target's error is raised by the write after
    it, or by them.
    """

    _QUEUED = 2  # blocks (of the zip's 256 KiB) waiting for the thread

    def __init__(self, target: ByteSink) -> None:
        self._target = target
        self._digest = hashlib.sha256()
        self._held = b""
        self._pipe: BlockPipe | None = None
        self._owner = threading.get_ident()

    def write(self, data: bytes) -> int:
        buffer = self._held + bytes(data)
        if len(buffer) > SEAL_BYTES:
            out, self._held = buffer[:-SEAL_BYTES], buffer[-SEAL_BYTES:]
            if threading.get_ident() != self._owner:
                self._drain()  # what the owner sent first is written first
                self._digest.update(out)
                self._target.write(out)
            else:
                if self._pipe is None:
                    self._pipe = BlockPipe(self._digest, self._target, queued=self._QUEUED)
                self._pipe.send(out)
        else:
            self._held = buffer
        return len(data)

    def _drain(self) -> None:
        """Wait until every block is hashed and written (raises what the thread met)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def flush(self) -> None:
        self._drain()
        self._target.flush()

    def close(self) -> None:
        """zipfile never closes a sink it was given; the owner of the target does."""

    def abandon(self) -> None:
        """The bundle is given up: stop the thread, whatever the target said."""
        try:
            self._drain()
        except Exception:  # noqa: S110 - the export is failing with its own error already
            pass

    def seal(self, key: SigningKey) -> None:
        self._drain()
        if self._held != seal_placeholder():
            raise ValueError("the zip does not end with the seal placeholder")
        signature = key.sign(seal_message(self._digest.digest())).signature
        self._target.write(SEAL_PREFIX + base64.b64encode(signature))
        self._target.flush()


# The container seal: the zip comment (the file's last bytes) holds the box's
# signature (base64, so `tail -c 88 | base64 -d` gives it back) over SHA-256 of
# every byte before the comment's prefix. The manifest covers the content; the
# seal covers the container too (timestamps, attributes, headers, added
# members), so a flipped byte anywhere in the .zip is detected, by verify-export
# and by the shell lines of VERIFY.txt.
SEAL_PREFIX = SEAL_PREFIX_TEXT.encode("ascii")
SEAL_BYTES = len(SEAL_PREFIX) + SEAL_B64_CHARS


def seal_placeholder() -> bytes:
    return SEAL_PREFIX + b"=" * SEAL_B64_CHARS


def seal_message(digest: bytes) -> bytes:
    return b"strongroom-zip-v1\n" + digest.hex().encode() + b"\n"


def container_digest(path: Path) -> bytes:
    """SHA-256 of the file without its trailing seal."""
    digest = hashlib.sha256()
    remaining = path.stat().st_size - SEAL_BYTES
    with path.open("rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(1 << 20, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.digest()


def seal_container(path: Path, key: SigningKey) -> None:
    signature = key.sign(seal_message(container_digest(path))).signature
    with path.open("r+b") as handle:
        handle.seek(-SEAL_BYTES, 2)
        if handle.read(len(SEAL_PREFIX)) != SEAL_PREFIX:
            raise ValueError("the zip does not end with the seal placeholder")
        handle.seek(-SEAL_B64_CHARS, 2)
        handle.write(base64.b64encode(signature))


def read_seal(path: Path) -> bytes | None:
    """The container signature at the end of a bundle, or None if there is none."""
    if path.stat().st_size < SEAL_BYTES:
        return None
    with path.open("rb") as handle:
        handle.seek(-SEAL_BYTES, 2)
        tail = handle.read()
    if not tail.startswith(SEAL_PREFIX):
        return None
    try:
        return base64.b64decode(tail[len(SEAL_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None
