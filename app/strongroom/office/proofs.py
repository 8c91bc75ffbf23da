"""Inclusion-proof files inside sealed bundles (shared by exports and certificates).

For log entry n: ``proofs/L<n>.leaf`` holds the raw leaf bytes,
``proofs/L<n>.json`` the RFC 9162 audit path to the bundle's tree head, and
``proofs/L<n>.path`` the same path as raw 32-byte nodes one after the other,
which `check_proofs.sh` walks with head/tail and openssl (no hex decoding).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from strongroom.office.sealed import SealedBundleWriter
from strongroom.proof.merkle import leaf_hash, verify_inclusion


def entry_stem(log_index: int) -> str:
    return f"L{log_index:010d}"


def write_proof(
    bundle: SealedBundleWriter, log_index: int, leaf: bytes, audit_path: list[bytes]
) -> None:
    head = bundle.tree_head
    stem = entry_stem(log_index)
    bundle.add_bytes(f"proofs/{stem}.leaf", leaf)
    bundle.add_bytes(f"proofs/{stem}.path", b"".join(audit_path))
    document = {
        "leaf_index": log_index,
        "tree_size": head.tree_size,
        "leaf_data": leaf.hex(),
        "leaf_hash": leaf_hash(leaf).hex(),
        "audit_path": [node.hex() for node in audit_path],
        "root_hash": head.root_hash.hex(),
    }
    bundle.add_bytes(f"proofs/{stem}.json", json_bytes(document))


@dataclass(frozen=True)
class ParsedProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: list[bytes]


def parse_proof(data: bytes) -> ParsedProof:
    """Raise ValueError (or KeyError/TypeError) on anything malformed."""
    doc = json.loads(data.decode("utf-8"))
    return ParsedProof(
        leaf_index=int(doc["leaf_index"]),
        tree_size=int(doc["tree_size"]),
        leaf_hash=bytes.fromhex(doc["leaf_hash"]),
        audit_path=[bytes.fromhex(h) for h in doc["audit_path"]],
    )


def proof_holds(proof: ParsedProof, leaf: bytes, tree_size: int, root: bytes) -> str | None:
    """None if `leaf` is included under (tree_size, root) by this proof, else why not."""
    if proof.tree_size != tree_size:
        return f"proof is for a tree of {proof.tree_size} leaves, sth.txt says {tree_size}"
    if leaf_hash(leaf) != proof.leaf_hash:
        return "leaf_hash does not match the leaf bytes"
    if not verify_inclusion(proof.leaf_hash, proof.leaf_index, tree_size, proof.audit_path, root):
        return "the audit path does not lead to the signed root"
    return None


def json_bytes(document: Any) -> bytes:
    """Stable, human-readable JSON (sorted keys, UTF-8, trailing newline)."""
    return (json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
