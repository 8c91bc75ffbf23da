"""`strongroom verify-export FILE`: check a sealed bundle and name every failing file.

Works on exports and on destruction certificates, offline, with the public key
inside the bundle (compare its fingerprint with the box's). Checks:

1. the zip itself (each member's CRC, no member name listed twice, every byte of
   the file a listed member, the directory, its end records or the seal, a zip
   comment that is exactly the seal, and no member comment nor extra field but
   zip64 sizes: bundle_layout.py);
2. MANIFEST.digest's signature (manifest.sig) by box.pem and the manifest's
   SHA-256 it gives (older bundles: the signature of MANIFEST.sha256 itself),
   then every listed file's SHA-256, files missing, and files present but not listed;
3. sth.txt and its signature sth.sig;
4. exports: every record's hash against its log leaf, the leaf's inclusion proof
   against the signed root, the phone's signature over the record, and every
   attachment's hash against the hash in its signed record;
   certificates: the certificate's signature, and every listed leaf's inclusion.

Reading is streamed: only small members (records, proofs, JSON) are loaded.
The bundle as read (its members, hashed once): bundle_read.py; what the
records and certificate entries prove: verify_export_entries.py.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from nacl.signing import VerifyKey

from strongroom.office.bundle_read import (
    ZIP_ERRORS,
    Bundle,
    ExportReport,
    Problem,
    hash_members,
    verify_sig,
)
from strongroom.office.sealed import (
    BOX_PEM,
    MANIFEST,
    MANIFEST_DIGEST,
    MANIFEST_SIG,
    STH_SIG,
    STH_TEXT,
    UNSIGNED,
    box_key_fingerprint,
    container_digest,
    read_seal,
    seal_message,
)
from strongroom.office.verify_export_entries import check_certificate, check_export
from strongroom.proof.pem import MalformedPublicKeyError, ed25519_public_key_from_pem
from strongroom.proof.sth import STH_FORMAT, MalformedTreeHeadError, SignedTreeHead


def _check_manifest(bundle: Bundle, key: VerifyKey | None) -> None:
    report = bundle.report
    if bundle.has(MANIFEST_DIGEST):
        # The box signs the one-line digest of the manifest (sealed.py says why).
        digest_line, signed = bundle.read(MANIFEST_DIGEST), MANIFEST_DIGEST
        manifest_hash = bundle.digests.get(MANIFEST)
        if digest_line != f"{manifest_hash}  {MANIFEST}\n".encode():
            report.problem(MANIFEST, f"its SHA-256 is not the one {MANIFEST_DIGEST} gives")
    else:  # bundles made before MANIFEST.digest: the manifest itself is signed
        digest_line, signed = bundle.read(MANIFEST), MANIFEST
    if not verify_sig(key, digest_line, bundle.read(MANIFEST_SIG)):
        # Either file may be the altered one: name both.
        report.problem(MANIFEST_SIG, f"does not verify {signed} with {BOX_PEM}")
        report.problem(signed, f"is not what the box signed ({MANIFEST_SIG} fails)")
    if not bundle.has(MANIFEST):
        if signed != MANIFEST:  # (reading it above said so already)
            report.problem(MANIFEST, "missing from the bundle")
        return
    listed: dict[str, str] = {}
    try:
        _read_listed(bundle, listed)
    except ZIP_ERRORS as exc:
        report.problem(MANIFEST, f"damaged inside the zip ({exc})")
        return
    for name, digest in listed.items():
        if name not in bundle.digests:
            report.problem(name, f"listed in {MANIFEST} but missing")
        elif bundle.digests[name] != digest:
            report.problem(name, f"SHA-256 differs from {MANIFEST}")
    for name in bundle.digests:
        if name not in listed and name not in UNSIGNED:
            report.problem(name, f"not listed in {MANIFEST}")


_HEX = "0123456789abcdef"


def _read_listed(bundle: Bundle, listed: dict[str, str]) -> None:
    """The manifest's lines into `listed`, read line by line: a 100,000-record export
    lists 600,000 files (55 MB)."""
    report = bundle.report
    last = ""
    with bundle.zf.open(f"{bundle.root}/{MANIFEST}") as raw:
        for number, data in enumerate(_lines(raw), start=1):
            try:
                last = data.decode("utf-8")
            except UnicodeDecodeError:
                report.problem(MANIFEST, "is not UTF-8 text")
                return
            digest, sep, name = last.removesuffix("\n").partition("  ")
            # strip() leaves something exactly when a character is not lowercase hex (in C:
            # a generator over each line's 64 characters was a tenth of a verify).
            if not sep or len(digest) != 64 or digest.strip(_HEX):
                report.problem(MANIFEST, f"line {number} is not '<sha256>  <file>'")
                continue
            listed[name] = digest
    if not last.endswith("\n"):
        report.problem(MANIFEST, "does not end with a newline")


def _lines(raw: IO[bytes]) -> Iterator[bytes]:
    """The member's lines as iterating it gives them (each with its newline, a last one
    without if it has none), read in 1 MiB blocks: line by line through the zip member
    was a tenth of a 10,000-message bundle's verify. A line longer than a block is kept
    as its blocks and joined once (a hostile manifest of one 55 MB line is copied once,
    not once per block)."""
    pending: list[bytes] = []  # the start of a line that has not ended yet
    while block := raw.read(1 << 20):
        if b"\n" not in block:
            pending.append(block)
            continue
        lines = block.split(b"\n")
        if pending:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
        rest = lines.pop()  # after the block's last newline: the next line's start
        for line in lines:
            yield line + b"\n"
        pending = [rest] if rest else []
    if pending:
        yield b"".join(pending)


def _parse_sth(text: bytes) -> SignedTreeHead | None:
    parts = text.split(b"\n")
    if len(parts) != 5 or parts[0] != STH_FORMAT.encode() or parts[4] != b"":
        return None
    try:
        size, stamp, root = int(parts[1]), int(parts[2]), bytes.fromhex(parts[3].decode())
        head = SignedTreeHead(size, root, stamp, bytes(64))
    except (ValueError, MalformedTreeHeadError):
        return None
    return head if head.signed_message() == text else None


def _check_sth(bundle: Bundle, key: VerifyKey | None) -> SignedTreeHead | None:
    report = bundle.report
    text, sig = bundle.read(STH_TEXT), bundle.read(STH_SIG)
    if text is None:
        return None
    unsigned = _parse_sth(text)
    if unsigned is None:
        report.problem(STH_TEXT, "is not a strongroom-sth-v1 tree head")
        return None
    if not verify_sig(key, text, sig):
        report.problem(STH_SIG, f"does not verify {STH_TEXT} with {BOX_PEM}")
        return None
    assert sig is not None
    head = SignedTreeHead(unsigned.tree_size, unsigned.root_hash, unsigned.timestamp_ms, sig)
    report.tree_head = head
    return head


def _check_consistency(bundle: Bundle, head: SignedTreeHead | None, key: VerifyKey | None) -> None:
    from strongroom.office.consistency import check_bundle_consistency

    if head is None:
        return
    verify = lambda message, sig: verify_sig(key, message, sig)  # noqa: E731
    for name, checked in check_bundle_consistency(bundle.digests, bundle.read, head, verify):
        if checked.ok:
            bundle.report.consistency += 1
        else:
            bundle.report.problem(name, checked.why)


def _check_seal(path: Path, key: VerifyKey | None, report: ExportReport) -> None:
    signature = read_seal(path)
    if signature is None:
        report.problem(path.name, "the container seal (zip comment) is missing or damaged")
    elif not verify_sig(key, seal_message(container_digest(path)), signature):
        report.problem(path.name, "the .zip file was altered after sealing (container seal)")


def verify_bundle(path: Path) -> ExportReport:
    """Check a sealed export or destruction certificate; every failure names its file."""
    report = ExportReport(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        report.problem(path.name, f"not a readable zip file ({exc})")
        return report
    with zf:
        bundle = hash_members(zf, report)
        if bundle is None:
            return report
        key: VerifyKey | None = None
        box_key: bytes | None = None
        pem = bundle.read(BOX_PEM)
        if pem is not None:
            try:
                box_key = ed25519_public_key_from_pem(pem.decode("ascii"))
                key = VerifyKey(box_key)
                report.signing_fingerprint = box_key_fingerprint(box_key)
            except (MalformedPublicKeyError, UnicodeDecodeError, ValueError):
                report.problem(BOX_PEM, "is not an Ed25519 public key")
        _check_seal(path, key, report)
        _check_manifest(bundle, key)
        head = _check_sth(bundle, key)
        _check_consistency(bundle, head, key)
        if bundle.has("export.json"):
            check_export(bundle, head, box_key)
        elif bundle.has("certificate.json"):
            check_certificate(bundle, head, key)
        else:
            report.problem(path.name, "holds neither export.json nor certificate.json")
    return report


# The command-line verdict lives in verify_verdict (kept importable from here).
from strongroom.office.verify_verdict import expect_fingerprint, main  # noqa: E402

__all__ = ["ExportReport", "Problem", "expect_fingerprint", "main", "verify_bundle"]
