"""Destruction certificates: what was destroyed, why, when and on whose approval, signed.

The certificate is a JSON document (UTF-8, sorted keys) signed as-is by the box's
Ed25519 key. It lists every destroyed record (row id, log index, kind, content
hash, the leaf bytes that still commit to it) and blob, the policies applied,
the approver, and the signed tree head that already contained all those leaves,
so anyone can later prove that exactly these entries existed and were erased.

It is stored in `destruction_certificates` and logged as an audit event (a log
leaf) in the same transaction as the erasure. `write_certificate_bundle` makes
the downloadable .zip: certificate, signature, inclusion proofs, box key,
VERIFY.txt, signed manifest; `verify_export.verify_bundle` checks it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.record import leaf_data
from strongroom.archive.store import Txn, reader_log
from strongroom.office.cert_later import LATER_EN, LATER_FR, add_later_entry
from strongroom.office.consistency import write_consistency
from strongroom.office.erasure import Erasure
from strongroom.office.errors import UnknownCertificate
from strongroom.office.policies import Policy
from strongroom.office.proofs import json_bytes, write_proof
from strongroom.office.sealed import (
    CHECK_PROOFS_SH,
    CHECK_PROOFS_SH_NAME,
    PROOF_SECTION_EN,
    PROOF_SECTION_FR,
    SealedBundleWriter,
    box_key_fingerprint,
    verify_instructions,
)
from strongroom.office.verify_text import CONSISTENCY_EN, CONSISTENCY_FR, openssl_verify_command
from strongroom.proof.sth import SignedTreeHead

CERT_FORMAT = "strongroom-destruction-certificate-v1"
CERT_FILE = "certificate.json"
CERT_SIG = "certificate.sig"


@dataclass(frozen=True)
class CertificateInfo:
    id: int
    created_at: int
    approver: str
    record_count: int
    log_index: int
    sha256: bytes


def iso_utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def build_certificate(
    erasure: Erasure,
    policy_of: dict[int, Policy],
    *,
    assignment_of: dict[int, str] | None = None,
    holds_checked: list[int] | None = None,
    approver: str,
    trigger: str,
    at_ms: int,
    tree_head: SignedTreeHead,
    box_public_key: bytes,
) -> bytes:
    """Pure: the certificate bytes for an erasure (policy_of maps record row id -> policy)."""
    counts: dict[int, int] = {}
    for record in erasure.records:
        policy = policy_of.get(record.row_id)
        if policy is not None:
            counts[policy.id] = counts.get(policy.id, 0) + 1
    policies = {p.id: p for p in policy_of.values()}
    assignment_of = assignment_of or {}
    origins: dict[int, set[str]] = {}
    for row_id, policy in policy_of.items():
        if row_id in assignment_of:
            origins.setdefault(policy.id, set()).add(assignment_of[row_id])
    document: dict[str, Any] = {
        "format": CERT_FORMAT,
        "box_public_key": box_public_key.hex(),
        "destroyed_at_ms": at_ms,
        "destroyed_at": iso_utc(at_ms),
        "approver": approver,
        "trigger": trigger,
        "count": len(erasure.records),
        "policies": [
            {
                **policies[pid].describe(),
                "records": count,
                "assigned_through": sorted(origins.get(pid, set())),
            }
            for pid, count in sorted(counts.items())
        ],
        "holds_checked": sorted(holds_checked or []),
        "records": [
            {
                "row_id": r.row_id,
                "log_index": r.log_index,
                "kind": r.kind,
                "record_id": r.record_id.hex(),
                "content_sha256": r.content_sha256.hex(),
                "leaf_data": leaf_data(r.kind, r.content_sha256, r.received_at).hex(),
                "sent_at": r.sent_at,
                "conversation_id": r.conversation_id,
                "policy": policy_of[r.row_id].name if r.row_id in policy_of else None,
                "assignment": assignment_of.get(r.row_id),
            }
            for r in erasure.records
        ],
        "blobs": [{"sha256": b.sha256.hex(), "log_index": b.log_index} for b in erasure.blobs],
        "tree_head": tree_head.to_dict(),
    }
    return json_bytes(document)


def head_before(txn: Txn) -> SignedTreeHead:
    """The signed head covering the log as it was when this batch began."""
    row = txn.conn.execute(
        "SELECT tree_size, root_hash, timestamp_ms, signature FROM tree_heads"
        " WHERE tree_size <= ? ORDER BY tree_size DESC LIMIT 1",
        (txn.first_index,),
    ).fetchone()
    if row is None:
        raise UnknownCertificate("the log has no signed tree head yet")
    return SignedTreeHead(int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3]))


def record_certificate(
    txn: Txn, certificate: bytes, signing_key: SigningKey, approver: str, count: int, trigger: str
) -> CertificateInfo:
    """Sign and store a certificate and log it as an audit event, in the caller's txn."""
    signature = signing_key.sign(certificate).signature
    digest = hashlib.sha256(certificate).digest()
    cur = txn.conn.execute(
        "INSERT INTO destruction_certificates (created_at, approver, record_count, certificate,"
        " signature, log_index) VALUES (?, ?, ?, ?, ?, -1)",
        (txn.at_ms, approver, count, certificate, signature),
    )
    cert_id = int(cur.lastrowid or 0)
    details = {"certificate": cert_id, "sha256": digest.hex(), "count": count, "trigger": trigger}
    index = writes.audit(approver, "destruction", f"certificate:{cert_id}", details)(txn)
    txn.conn.execute(
        "UPDATE destruction_certificates SET log_index = ? WHERE id = ?", (index, cert_id)
    )
    return CertificateInfo(cert_id, txn.at_ms, approver, count, int(index), digest)


def list_certificates(conn: Connection) -> list[CertificateInfo]:
    rows = conn.execute(
        "SELECT id, created_at, approver, record_count, log_index, certificate"
        " FROM destruction_certificates ORDER BY id"
    )
    return [
        CertificateInfo(
            int(i), int(at), str(who), int(n), int(idx), hashlib.sha256(bytes(c)).digest()
        )
        for i, at, who, n, idx, c in rows
    ]


def load_certificate(conn: Connection, cert_id: int) -> tuple[bytes, bytes]:
    row = conn.execute(
        "SELECT certificate, signature FROM destruction_certificates WHERE id = ?", (cert_id,)
    ).fetchone()
    if row is None:
        raise UnknownCertificate(f"no destruction certificate {cert_id}")
    return bytes(row[0]), bytes(row[1])


_CERT_FR = f"""
6. Vérifiez la signature du certificat de destruction :
    $ {openssl_verify_command(CERT_FILE, CERT_SIG)}
"""
_CERT_EN = f"""
6. Check the signature of the destruction certificate:
    $ {openssl_verify_command(CERT_FILE, CERT_SIG)}
"""


def write_certificate_bundle(
    conn: Connection, signing_key: SigningKey, cert_id: int, out_path: Path
) -> Path:
    """The downloadable .zip of one certificate, verifiable offline like an export."""
    import json

    certificate, signature = load_certificate(conn, cert_id)
    document = json.loads(certificate)
    head = SignedTreeHead.from_dict(document["tree_head"])
    root = f"strongroom-destruction-{cert_id:06d}"
    log = reader_log(conn)
    bundle = SealedBundleWriter(out_path, root, signing_key, head)
    try:
        bundle.add_bytes(CERT_FILE, certificate)
        bundle.add_bytes(CERT_SIG, signature)
        indexes = [int(r["log_index"]) for r in document["records"]]
        indexes += [int(b["log_index"]) for b in document["blobs"]]
        for index in indexes:
            row = conn.execute(
                "SELECT leaf_data FROM log_leaves WHERE idx = ?", (index,)
            ).fetchone()
            write_proof(bundle, index, bytes(row[0]), log.inclusion_proof(index, head.tree_size))
        bundle.add_bytes(CHECK_PROOFS_SH_NAME, CHECK_PROOFS_SH.encode())
        write_consistency(bundle, log, conn)  # from the heads published before (#14)
        own = conn.execute(
            "SELECT log_index FROM destruction_certificates WHERE id = ?", (cert_id,)
        ).fetchone()
        later = add_later_entry(bundle, conn, int(own[0]))
        fingerprint = box_key_fingerprint(bytes(signing_key.verify_key))
        text = verify_instructions(
            root,
            fingerprint,
            _CERT_FR
            + PROOF_SECTION_FR.replace("6.", "7.", 1)
            + CONSISTENCY_FR
            + (LATER_FR if later else ""),
            _CERT_EN
            + PROOF_SECTION_EN.replace("6.", "7.", 1)
            + CONSISTENCY_EN
            + (LATER_EN if later else ""),
        )
        bundle.finish(text)
    except BaseException:
        bundle.abort()
        raise
    return out_path
