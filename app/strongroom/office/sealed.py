"""A sealed bundle: a .zip whose every file is listed in a signed SHA-256 manifest.

Layout (all under one top directory so unzipping makes no mess)::

    <root>/MANIFEST.sha256   `sha256sum -c` format: "<hex>  <path>" per line, LF
    <root>/MANIFEST.digest   one line in the same format: the SHA-256 of MANIFEST.sha256
    <root>/manifest.sig      raw 64-byte Ed25519 signature of MANIFEST.digest by the box
    <root>/sth.txt           the signed tree head text, byte for byte what the box signed
    <root>/sth.sig           raw 64-byte Ed25519 signature of sth.txt
    <root>/box.pem           the box public key (SubjectPublicKeyInfo PEM)
    <root>/VERIFY.txt        how to check it all with sha256sum and openssl (FR/EN)
    <root>/...               the content (exports, certificates)

Every file except those three is in the manifest, so a changed byte anywhere
is caught by `sha256sum -c` of the manifest, of the digest line, or by the
signature. The box signs the one-line digest rather than the manifest itself:
Ed25519 needs the whole message in memory, and `SigningKey.sign` copies it
about three times; the manifest of a 100,000-message export is 55 MB.
Members are written through a hashing stream, so a bundle of any size is built
without holding it in memory; the manifest lists them in the order written
(VERIFY.txt sorts both lists before comparing) and is kept compressed until
the end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from nacl.signing import SigningKey

from strongroom.office.offload import BlockPipe
from strongroom.office.verify_text import (
    CHECK_PROOFS_SH,
    CHECK_PROOFS_SH_NAME,
    PROOF_SECTION_EN,
    PROOF_SECTION_FR,
    SEAL_B64_CHARS,
    SEAL_PREFIX_TEXT,
    openssl_verify_command,
    verify_instructions,
)
from strongroom.office.zip_stream import StreamingZip
from strongroom.proof.pem import ed25519_public_key_pem
from strongroom.proof.sth import SignedTreeHead

__all__ = [
    "CHECK_PROOFS_SH",
    "CHECK_PROOFS_SH_NAME",
    "PROOF_SECTION_EN",
    "PROOF_SECTION_FR",
    "verify_instructions",
]

MANIFEST = "MANIFEST.sha256"
MANIFEST_DIGEST = "MANIFEST.digest"
MANIFEST_SIG = "manifest.sig"
STH_TEXT = "sth.txt"
STH_SIG = "sth.sig"
BOX_PEM = "box.pem"
VERIFY_TXT = "VERIFY.txt"
UNSIGNED = frozenset({MANIFEST, MANIFEST_DIGEST, MANIFEST_SIG})


VERIFY_MANIFEST_CMD = openssl_verify_command(MANIFEST_DIGEST, MANIFEST_SIG)
VERIFY_STH_CMD = openssl_verify_command(STH_TEXT, STH_SIG)
SHA256SUM_CMD = f"sha256sum -c {MANIFEST}"

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, limit: int = 80) -> str:
    """A name sha256sum prints without escaping and every OS accepts."""
    cleaned = _SAFE.sub("_", name).strip("._") or "file"
    return cleaned[:limit]


# What no file name in a bundle may hold: path separators, characters Windows
# refuses, and backslash/control characters (sha256sum would escape the line).
_UNSAFE_UNICODE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f-\x9f]+')


def unicode_file_name(name: str, limit_bytes: int = 180) -> str:
    """The sender's own file name (accents, spaces, any script), made safe to unzip."""
    import unicodedata

    cleaned = _UNSAFE_UNICODE.sub("_", unicodedata.normalize("NFC", name)).strip(" .") or "file"
    while len(cleaned.encode("utf-8")) > limit_bytes:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = f"{stem[:-1]}.{ext}" if dot and stem and len(ext) < 10 else cleaned[:-1]
    return cleaned


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class HashingSink(Protocol):
    """What `SealedBundleWriter.open` gives: write bytes to the member."""

    def write(self, data: bytes, /) -> int: ...


_STORE_SMALL = 4096  # zip_stream stores members below this size rather than deflate them
_HOLD = 1 << 16  # bytes a streamed member gathers before hashing and deflating them


class _HashingWriter:
    """Hashes what it is given and passes it on in blocks of about 64 KiB: an export's
    HTML comes a record (~700 bytes) at a time, and each write went through SHA-256,
    CRC-32, deflate and the zip's buffer (~4 µs of call overhead a record). The
    blocks' hashing and writing go to a second thread (offload.py says why)."""

    def __init__(self, target: _Writable) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._held = bytearray()
        self._pipe = BlockPipe(self.digest, target)

    def write(self, data: bytes) -> int:
        size = len(data)
        self.size += size
        if size >= _HOLD:
            self.flush()
            self._pipe.send(bytes(data))  # its own copy: a caller may reuse its buffer
        else:
            self._held += data  # a copy: a caller may reuse its buffer
            if len(self._held) >= _HOLD:
                self.flush()
        return size

    def flush(self) -> None:
        if self._held:
            block = bytes(self._held)
            self._held.clear()
            self._pipe.send(block)

    def close(self) -> None:
        """Wait until every block is hashed and written (then `digest` is final)."""
        self._pipe.close()


class ByteSink(Protocol):
    """Where a bundle goes: written strictly in sequence, never read or sought."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class SealedBundleWriter:
    """Write members, then `finish()` adds the tree head, key, VERIFY.txt and manifest.

    The target is a path, or any binary sink written strictly in sequence (no
    seek: zipfile then uses data descriptors), so a bundle can go straight to
    an encrypted spool or a socket. The seal is computed on the way out.
    """

    def __init__(
        self,
        target: Path | ByteSink,
        root: str,
        signing_key: SigningKey,
        tree_head: SignedTreeHead,
    ) -> None:
        self.path = target if isinstance(target, Path) else None
        self._file: IO[bytes] | None = target.open("wb") if isinstance(target, Path) else None
        sink: ByteSink
        if self._file is not None:
            sink = self._file
        else:
            assert not isinstance(target, Path)
            sink = target
        self.root = root
        self._key = signing_key
        self.tree_head = tree_head
        self._stream = SealingStream(sink)
        self._zip = StreamingZip(self._stream)
        # The manifest's lines, in the order the members are written, kept
        # compressed (~45 bytes a member instead of ~90, and no object each).
        self._lines = _CompressedLines()

    def _member(self, name: str) -> str:
        # No set of the names written: six per exported record would cost more memory
        # than the rest of the export. Callers make names unique: exports and
        # certificates name a record's files by its log index.
        if name in UNSIGNED or name.startswith("/") or ".." in name or "\0" in name:
            raise ValueError(f"bad bundle member {name!r}")
        return f"{self.root}/{name}"

    @contextmanager
    def open(self, name: str, *, level: int = 6) -> Iterator[_HashingWriter]:
        """Stream one member; it is hashed for the manifest as it is written."""
        member = self._member(name)
        with self._zip.open(member, level=level) as raw:
            writer = _HashingWriter(raw)
            try:
                yield writer
                writer.flush()
            finally:
                writer.close()  # the zip's member ends only once its thread is done
        self._lines.add(writer.digest.hexdigest(), name)

    def add_bytes(self, name: str, data: bytes, *, compress: bool = True) -> None:
        self._zip.add(self._member(name), data, compress=compress)
        self._lines.add(hashlib.sha256(data).hexdigest(), name)

    def add_small(self, files: Iterable[tuple[str, bytes, bool]]) -> None:
        """A record's files, (name, bytes, compress) each: the same bytes as
        `add_bytes(name, data, compress=compress)` one by one, in fewer calls (those
        under 4 KiB, nearly all, are stored whatever `compress` says)."""
        lines: list[str] = []
        for name, data, compress in files:
            if len(data) >= _STORE_SMALL:
                if lines:  # the manifest keeps the order the files were written in
                    self._lines.add_lines("".join(lines))
                    lines.clear()
                self.add_bytes(name, data, compress=compress)
                continue
            raw, flags = StreamingZip.flags(self._member(name))
            self._zip.add_stored(raw, flags, data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
        if lines:
            self._lines.add_lines("".join(lines))

    def add_chunks(self, name: str, chunks: Iterable[bytes], *, level: int = 6) -> None:
        with self.open(name, level=level) as out:
            for chunk in chunks:
                out.write(chunk)

    def finish(self, verify_text: str) -> bytes:
        """Seal the bundle; return SHA-256 of the manifest (what the audit log records)."""
        head = self.tree_head
        sth_text = head.signed_message()
        self.add_bytes(STH_TEXT, sth_text)
        self.add_bytes(STH_SIG, head.signature)
        self.add_bytes(BOX_PEM, ed25519_public_key_pem(bytes(self._key.verify_key)).encode())
        self.add_bytes(VERIFY_TXT, verify_text.encode("utf-8"))
        # Written from the compressed lines, never whole in memory; the box signs
        # the one line that gives its SHA-256.
        manifest_sha = hashlib.sha256()
        with self._zip.open(f"{self.root}/{MANIFEST}", level=1) as out:
            for chunk in self._lines.chunks():
                manifest_sha.update(chunk)
                out.write(chunk)
        digest_line = f"{manifest_sha.hexdigest()}  {MANIFEST}\n".encode()
        self._zip.add(f"{self.root}/{MANIFEST_DIGEST}", digest_line, compress=False)
        signature = self._key.sign(digest_line).signature
        self._zip.add(f"{self.root}/{MANIFEST_SIG}", signature, compress=False)
        self._zip.close(seal_placeholder())
        self._stream.seal(self._key)
        if self._file is not None:
            self._file.close()
        return manifest_sha.digest()

    def abort(self) -> None:
        # Nothing to close in the zip: what was written stays a truncated, unsealed file.
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _CompressedLines:
    """`sha256sum` lines appended one by one, read back (as often as needed) in order."""

    def __init__(self) -> None:
        self._pack = zlib.compressobj(1)
        self._packed: list[bytes] = []
        self._pending = bytearray()
        self._done = False

    def add(self, digest_hex: str, name: str) -> None:
        if self._done:
            raise ValueError("the manifest is already sealed")
        self._pending += f"{digest_hex}  {name}\n".encode()
        if len(self._pending) >= 1 << 16:  # compressed in blocks, not line by line
            self._pack_pending()

    def add_lines(self, text: str) -> None:
        """Several whole lines at once ("<hex>  <name>\\n" each)."""
        if self._done:
            raise ValueError("the manifest is already sealed")
        self._pending += text.encode()
        if len(self._pending) >= 1 << 16:
            self._pack_pending()

    def _pack_pending(self) -> None:
        packed = self._pack.compress(bytes(self._pending))
        self._pending.clear()
        if packed:
            self._packed.append(packed)

    def chunks(self) -> Iterator[bytes]:
        if not self._done:
            self._pack_pending()
            self._packed.append(self._pack.flush())
            self._done = True
        unpack = zlib.decompressobj()
        for packed in self._packed:
            data = unpack.decompress(packed)
            if data:
                yield data
        rest = unpack.flush()
        if rest:
            yield rest


class SealingStream:
    """A write-only sink that hashes all but the last SEAL_BYTES bytes it is given.

    zipfile writes the comment (the seal placeholder) last; it is held back
    here and replaced by the signature over the hash of everything before it.
    """

    def __init__(self, target: ByteSink) -> None:
        self._target = target
        self._digest = hashlib.sha256()
        self._held = b""

    def write(self, data: bytes) -> int:
        buffer = self._held + bytes(data)
        if len(buffer) > SEAL_BYTES:
            out, self._held = buffer[:-SEAL_BYTES], buffer[-SEAL_BYTES:]
            self._digest.update(out)
            self._target.write(out)
        else:
            self._held = buffer
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def close(self) -> None:
        """zipfile never closes a sink it was given; the owner of the target does."""

    def seal(self, key: SigningKey) -> None:
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


def box_key_fingerprint(verify_key: bytes) -> str:
    """SHA-256 of the DER public key: `openssl pkey -pubin -in box.pem -outform DER | sha256sum`."""
    from strongroom.proof.pem import ED25519_SPKI_PREFIX

    return hashlib.sha256(ED25519_SPKI_PREFIX + verify_key).hexdigest()
