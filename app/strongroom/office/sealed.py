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

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from nacl.signing import SigningKey

from strongroom.office.bundle_names import safe_file_name, unicode_file_name
from strongroom.office.manifest_lines import CompressedLines
from strongroom.office.offload import BlockPipe
from strongroom.office.seal import (
    SEAL_BYTES,
    SEAL_PREFIX,
    ByteSink,
    SealingStream,
    container_digest,
    read_seal,
    seal_container,
    seal_message,
    seal_placeholder,
)
from strongroom.office.verify_text import (
    CHECK_PROOFS_SH,
    CHECK_PROOFS_SH_NAME,
    PROOF_SECTION_EN,
    PROOF_SECTION_FR,
    openssl_verify_command,
    verify_instructions,
)
from strongroom.office.zip_stream import StreamingZip
from strongroom.proof.pem import ed25519_public_key_pem
from strongroom.proof.sth import SignedTreeHead

# Re-exported: what bundles are made of is read from here (the seal: seal.py, the
# names: bundle_names.py, the manifest's lines: manifest_lines.py).
__all__ = [
    "CHECK_PROOFS_SH",
    "CHECK_PROOFS_SH_NAME",
    "PROOF_SECTION_EN",
    "PROOF_SECTION_FR",
    "SEAL_BYTES",
    "SEAL_PREFIX",
    "ByteSink",
    "SealingStream",
    "container_digest",
    "read_seal",
    "safe_file_name",
    "seal_container",
    "seal_message",
    "seal_placeholder",
    "unicode_file_name",
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
        self._lines = CompressedLines()

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
        self._stream.abandon()
        if self._file is not None:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def box_key_fingerprint(verify_key: bytes) -> str:
    """SHA-256 of the DER public key: `openssl pkey -pubin -in box.pem -outform DER | sha256sum`."""
    from strongroom.proof.pem import ED25519_SPKI_PREFIX

    return hashlib.sha256(ED25519_SPKI_PREFIX + verify_key).hexdigest()
