"""verify-export's checks of what a bundle proves: each record of an export (its
hash against its log leaf, the leaf's inclusion under the signed root, the phone's
signature, its attachment's hash) and each entry of a destruction certificate."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import cbor2
from nacl.signing import VerifyKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.office.bundle_read import Bundle, verify_sig
from strongroom.office.proofs import entry_stem, parse_proof, proof_holds
from strongroom.office.sealed import BOX_PEM, STH_TEXT
from strongroom.proof.sth import SignedTreeHead


def _check_leaf(
    bundle: Bundle, log_index: int, head: SignedTreeHead | None, kind: str, content: bytes
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


def _json(bundle: Bundle, name: str) -> Any:
    data = bundle.read(name)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        bundle.report.problem(name, "is not valid JSON")
        return None


def check_export(bundle: Bundle, head: SignedTreeHead | None, box_key: bytes | None) -> None:
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


def _check_record(bundle: Bundle, log_index: int, head: SignedTreeHead | None) -> None:
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
    if not verify_sig(device_key, RECORD_SIGNING_CONTEXT + body, sig):
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


def check_certificate(bundle: Bundle, head: SignedTreeHead | None, key: VerifyKey | None) -> None:
    report = bundle.report
    report.kind = "destruction-certificate"
    data, sig = bundle.read("certificate.json"), bundle.read("certificate.sig")
    if not verify_sig(key, data, sig):
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


__all__ = ["check_certificate", "check_export"]
