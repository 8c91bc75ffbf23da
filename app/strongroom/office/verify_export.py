"""`strongroom verify-export FILE`: check a sealed bundle and name every failing file.

Works on exports and on destruction certificates, offline, with the public key
inside the bundle (compare its fingerprint with the box's). Checks:

1. the zip itself (each member's CRC);
2. MANIFEST.digest's signature (manifest.sig) by box.pem and the manifest's
   SHA-256 it gives (older bundles: the signature of MANIFEST.sha256 itself),
   then every listed file's SHA-256, files missing, and files present but not listed;
3. sth.txt and its signature sth.sig;
4. exports: every record's hash against its log leaf, the leaf's inclusion proof
   against the signed root, the phone's signature over the record, and every
   attachment's hash against the hash in its signed record;
   certificates: the certificate's signature, and every listed leaf's inclusion.

Reading is streamed: only small members (records, proofs, JSON) are loaded.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.office.proofs import entry_stem, parse_proof, proof_holds
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
from strongroom.proof.pem import MalformedPublicKeyError, ed25519_public_key_from_pem
from strongroom.proof.sth import STH_FORMAT, MalformedTreeHeadError, SignedTreeHead

MAX_SMALL_MEMBER = 8 * 1024 * 1024
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class ExportReport:
    path: Path
    kind: str = "unknown"  # "export" | "destruction-certificate"
    files: int = 0
    records: int = 0
    proofs: int = 0
    attachments: int = 0
    consistency: int = 0  # earlier signed heads this log is proven to extend
    tree_head: SignedTreeHead | None = None
    signing_fingerprint: str | None = None  # SHA-256 of box.pem's DER key, as openssl prints it
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, file: str, message: str) -> None:
        self.problems.append(Problem(file, message))

    def failing_files(self) -> set[str]:
        return {p.file for p in self.problems}


class _Bundle:
    def __init__(self, zf: zipfile.ZipFile, root: str, report: ExportReport) -> None:
        self.zf = zf
        self.root = root
        self.report = report
        self.digests: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return name in self.digests

    def read(self, name: str) -> bytes | None:
        """A small member's bytes, or None (the problem is reported)."""
        if name not in self.digests:
            self.report.problem(name, "missing from the bundle")
            return None
        info = self.zf.getinfo(f"{self.root}/{name}")
        if info.file_size > MAX_SMALL_MEMBER:
            self.report.problem(name, "unexpectedly large")
            return None
        return self.zf.read(info)


def _hash_members(zf: zipfile.ZipFile, report: ExportReport) -> _Bundle | None:
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        report.problem(report.path.name, "the bundle must hold exactly one top directory")
        return None
    root = roots.pop()
    bundle = _Bundle(zf, root, report)
    for info in zf.infolist():
        if info.is_dir():
            continue
        rel = info.filename[len(root) + 1 :]
        digest = hashlib.sha256()
        try:
            with zf.open(info) as member:
                while chunk := member.read(1 << 16):
                    digest.update(chunk)
        except _ZIP_ERRORS as exc:
            report.problem(rel, f"damaged inside the zip ({exc})")
            continue
        bundle.digests[rel] = digest.hexdigest()
    report.files = len(bundle.digests)
    return bundle


def _verify_sig(key: VerifyKey | None, message: bytes | None, sig: bytes | None) -> bool:
    if key is None or message is None or sig is None:
        return False
    try:
        key.verify(message, sig)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def _check_manifest(bundle: _Bundle, key: VerifyKey | None) -> None:
    report = bundle.report
    if bundle.has(MANIFEST_DIGEST):
        # The box signs the one-line digest of the manifest (sealed.py says why).
        digest_line, signed = bundle.read(MANIFEST_DIGEST), MANIFEST_DIGEST
        manifest_hash = bundle.digests.get(MANIFEST)
        if digest_line != f"{manifest_hash}  {MANIFEST}\n".encode():
            report.problem(MANIFEST, f"its SHA-256 is not the one {MANIFEST_DIGEST} gives")
    else:  # bundles made before MANIFEST.digest: the manifest itself is signed
        digest_line, signed = bundle.read(MANIFEST), MANIFEST
    if not _verify_sig(key, digest_line, bundle.read(MANIFEST_SIG)):
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
    except _ZIP_ERRORS as exc:
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


def _read_listed(bundle: _Bundle, listed: dict[str, str]) -> None:
    """The manifest's lines into `listed`, read line by line: a 100,000-record export
    lists 600,000 files (55 MB)."""
    report = bundle.report
    last = ""
    with bundle.zf.open(f"{bundle.root}/{MANIFEST}") as raw:
        for number, data in enumerate(raw, start=1):
            try:
                last = data.decode("utf-8")
            except UnicodeDecodeError:
                report.problem(MANIFEST, "is not UTF-8 text")
                return
            digest, sep, name = last.removesuffix("\n").partition("  ")
            if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                report.problem(MANIFEST, f"line {number} is not '<sha256>  <file>'")
                continue
            listed[name] = digest
    if not last.endswith("\n"):
        report.problem(MANIFEST, "does not end with a newline")


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


def _check_sth(bundle: _Bundle, key: VerifyKey | None) -> SignedTreeHead | None:
    report = bundle.report
    text, sig = bundle.read(STH_TEXT), bundle.read(STH_SIG)
    if text is None:
        return None
    unsigned = _parse_sth(text)
    if unsigned is None:
        report.problem(STH_TEXT, "is not a strongroom-sth-v1 tree head")
        return None
    if not _verify_sig(key, text, sig):
        report.problem(STH_SIG, f"does not verify {STH_TEXT} with {BOX_PEM}")
        return None
    assert sig is not None
    head = SignedTreeHead(unsigned.tree_size, unsigned.root_hash, unsigned.timestamp_ms, sig)
    report.tree_head = head
    return head


def _check_leaf(
    bundle: _Bundle, log_index: int, head: SignedTreeHead | None, kind: str, content: bytes
) -> None:
    """The leaf commits to (kind, content hash) and is included under the signed root."""
    report = bundle.report
    stem = entry_stem(log_index)
    leaf_name, proof_name = f"proofs/{stem}.leaf", f"proofs/{stem}.json"
    leaf, proof_bytes = bundle.read(leaf_name), bundle.read(proof_name)
    if leaf is None or proof_bytes is None:
        return
    try:
        decoded = cbor2.loads(leaf)
        fine = (
            isinstance(decoded, list)
            and len(decoded) == 4
            and decoded[0] == 1
            and decoded[1] == kind
            and decoded[2] == content
        )
    except Exception:  # cbor2 raises several types on garbage
        fine = False
    if not fine:
        report.problem(leaf_name, f"does not commit to {kind} {content.hex()[:16]}…")
    try:
        proof = parse_proof(proof_bytes)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        report.problem(proof_name, "is not a readable inclusion proof")
        return
    if proof.leaf_index != log_index:
        report.problem(proof_name, f"is for leaf {proof.leaf_index}, not {log_index}")
        return
    path_name = f"proofs/{stem}.path"  # the raw nodes check_proofs.sh walks
    if bundle.has(path_name) and bundle.read(path_name) != b"".join(proof.audit_path):
        report.problem(path_name, f"is not the audit path of {proof_name}")
    if head is not None:
        why = proof_holds(proof, leaf, head.tree_size, head.root_hash)
        if why is not None:
            report.problem(proof_name, why)
    report.proofs += 1


def _json(bundle: _Bundle, name: str) -> Any:
    data = bundle.read(name)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        bundle.report.problem(name, "is not valid JSON")
        return None


def _check_export(bundle: _Bundle, head: SignedTreeHead | None, box_key: bytes | None) -> None:
    report = bundle.report
    report.kind = "export"
    index = _json(bundle, "export.json")
    if not isinstance(index, dict):
        return
    try:
        if head is not None and index["tree_head"] != head.to_dict():
            report.problem("export.json", f"its tree head differs from {STH_TEXT}")
        if box_key is not None and index["box_public_key"] != box_key.hex():
            report.problem("export.json", f"names another box key than {BOX_PEM}")
        indexes = [int(i) for i in index["records"]]
        if int(index["record_count"]) != len(indexes):
            report.problem("export.json", "record_count differs from its record list")
    except (KeyError, TypeError, ValueError):
        report.problem("export.json", "lacks its tree head, key or record list")
        return
    expected = {f"records/{entry_stem(i)}.cbor" for i in indexes}
    for name in bundle.digests:
        if name.startswith("records/") and name.endswith(".cbor") and name not in expected:
            report.problem(name, "is not in export.json's record list")
    for log_index in indexes:
        _check_record(bundle, log_index, head)


def _check_record(bundle: _Bundle, log_index: int, head: SignedTreeHead | None) -> None:
    report = bundle.report
    stem = entry_stem(log_index)
    cbor_name, sig_name, json_name = (f"records/{stem}.{ext}" for ext in ("cbor", "sig", "json"))
    body, sig, meta = bundle.read(cbor_name), bundle.read(sig_name), _json(bundle, json_name)
    if body is None:
        return
    record_id = hashlib.sha256(body).digest()
    try:
        fields = cbor2.loads(body)
        kind = str(fields["kind"])
    except Exception:  # cbor2 raises several types on garbage
        report.problem(cbor_name, "is not a readable record")
        return
    _check_leaf(bundle, log_index, head, kind, record_id)
    report.records += 1
    if not isinstance(meta, dict):
        return
    try:
        if meta["record_id"] != record_id.hex() or meta["log_index"] != log_index:
            report.problem(json_name, f"does not describe {cbor_name}")
        device_key = VerifyKey(bytes.fromhex(meta["device"]["sign_key"]))
    except (KeyError, TypeError, ValueError):
        report.problem(json_name, "lacks the record's id, log index or device key")
        return
    if not _verify_sig(device_key, RECORD_SIGNING_CONTEXT + body, sig):
        report.problem(sig_name, f"the phone's signature does not verify {cbor_name}")
    attachment = meta.get("attachment_file")
    if attachment is not None:
        blob = fields.get("blob") if isinstance(fields, dict) else None
        wanted = blob.get("sha256") if isinstance(blob, dict) else None
        actual = bundle.digests.get(str(attachment))
        if actual is None:
            report.problem(str(attachment), "missing from the bundle")
        elif not isinstance(wanted, bytes) or actual != wanted.hex():
            report.problem(str(attachment), f"does not match the SHA-256 signed in {cbor_name}")
        else:
            report.attachments += 1


def _check_certificate(bundle: _Bundle, head: SignedTreeHead | None, key: VerifyKey | None) -> None:
    report = bundle.report
    report.kind = "destruction-certificate"
    data, sig = bundle.read("certificate.json"), bundle.read("certificate.sig")
    if not _verify_sig(key, data, sig):
        report.problem("certificate.sig", f"does not verify certificate.json with {BOX_PEM}")
    doc = _json(bundle, "certificate.json")
    if not isinstance(doc, dict):
        return
    try:
        if head is not None and doc["tree_head"] != head.to_dict():
            report.problem("certificate.json", f"its tree head differs from {STH_TEXT}")
        entries = [
            (int(r["log_index"]), str(r["kind"]), bytes.fromhex(r["content_sha256"]))
            for r in doc["records"]
        ]
        entries += [(int(b["log_index"]), "blob", bytes.fromhex(b["sha256"])) for b in doc["blobs"]]
        if int(doc["count"]) != len(doc["records"]):
            report.problem("certificate.json", "count differs from its record list")
    except (KeyError, TypeError, ValueError):
        report.problem("certificate.json", "lacks its tree head or entry list")
        return
    for log_index, kind, content in entries:
        _check_leaf(bundle, log_index, head, kind, content)
        report.records += kind != "blob"


def _check_consistency(bundle: _Bundle, head: SignedTreeHead | None, key: VerifyKey | None) -> None:
    from strongroom.office.consistency import check_bundle_consistency

    if head is None:
        return
    verify = lambda message, sig: _verify_sig(key, message, sig)  # noqa: E731
    for name, checked in check_bundle_consistency(bundle.digests, bundle.read, head, verify):
        if checked.ok:
            bundle.report.consistency += 1
        else:
            bundle.report.problem(name, checked.why)


def _check_seal(path: Path, key: VerifyKey | None, report: ExportReport) -> None:
    signature = read_seal(path)
    if signature is None:
        report.problem(path.name, "the container seal (zip comment) is missing or damaged")
    elif not _verify_sig(key, seal_message(container_digest(path)), signature):
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
        bundle = _hash_members(zf, report)
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
            _check_export(bundle, head, box_key)
        elif bundle.has("certificate.json"):
            _check_certificate(bundle, head, key)
        else:
            report.problem(path.name, "holds neither export.json nor certificate.json")
    return report


# The command-line verdict lives in verify_verdict (kept importable from here).
from strongroom.office.verify_verdict import expect_fingerprint, main  # noqa: E402

__all__ = ["ExportReport", "Problem", "expect_fingerprint", "main", "verify_bundle"]
