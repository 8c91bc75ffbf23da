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
    bundle.add_small(proof_files(bundle, log_index, leaf, audit_path))


def proof_files(
    bundle: SealedBundleWriter, log_index: int, leaf: bytes, audit_path: list[bytes]
) -> list[tuple[str, bytes, bool]]:
    """proofs/L<n>.leaf, .path and .json, for `SealedBundleWriter.add_small`."""
    head = bundle.tree_head
    stem = entry_stem(log_index)
    return [
        (f"proofs/{stem}.leaf", leaf, False),
        (f"proofs/{stem}.path", b"".join(audit_path), False),
        (
            f"proofs/{stem}.json",
            proof_json(log_index, head.tree_size, leaf, audit_path, head.root_hash),
            True,
        ),
    ]


def proof_json(
    log_index: int, tree_size: int, leaf: bytes, audit_path: list[bytes], root: bytes
) -> bytes:
    """proofs/L<n>.json: the bytes `json_bytes` makes of this document, written directly.

    json.dumps with indent runs its pure-Python encoder (~30 µs a proof); an export
    writes one proof per record, and the layout here is fixed (keys sorted, one
    space of indent). tests/test_export_streaming.py checks the bytes are the same.
    """
    if audit_path:
        nodes = ",\n".join(f'  "{node.hex()}"' for node in audit_path)
        path = f"[\n{nodes}\n ]"
    else:
        path = "[]"
    return (
        f'{{\n "audit_path": {path},\n "leaf_data": "{leaf.hex()}",\n'
        f' "leaf_hash": "{leaf_hash(leaf).hex()}",\n "leaf_index": {log_index},\n'
        f' "root_hash": "{root.hex()}",\n "tree_size": {tree_size}\n}}\n'
    ).encode()


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
    """Stable, human-readable JSON (sorted keys, UTF-8, trailing newline).

    The bytes are json.dumps(sort_keys=True, indent=1, ensure_ascii=False)'s; with an
    indent json runs its pure-Python encoder (~30 µs for a record's document, one per
    exported record), so plain documents are laid out here, strings escaped by
    json's C function. Anything else (a float, a non-string key) goes to json.dumps.
    """
    try:
        text = _layout(document, "\n")
    except _Unusual:
        text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False)
    return (text + "\n").encode()


class _Unusual(Exception):
    """A value `_layout` leaves to json.dumps."""


Unusual = _Unusual  # for export_json's template, which lays out parts of a document


_quote: Any = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def _layout(value: Any, newline: str, hex_bytes: bool = False) -> str:
    # `newline` is the line break plus this level's indent. `hex_bytes`: a record's
    # fields as export_json lays them out (bytes as hex, a tuple left to the caller).
    kind = type(value)
    if kind is str:
        return str(_quote(value))
    if hex_bytes and kind is bytes:
        return f'"{value.hex()}"'
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    inner = newline + " "
    if kind is dict:
        if not value:
            return "{}"
        keys = list(value)
        if not all(type(key) is str for key in keys):
            raise _Unusual
        keys.sort()
        body = ",".join(
            [f"{inner}{_quote(k)}: {_layout(value[k], inner, hex_bytes)}" for k in keys]
        )
        return "{" + body + newline + "}"
    if kind is list or (kind is tuple and not hex_bytes):
        if not value:
            return "[]"
        items = [inner + _layout(v, inner, hex_bytes) for v in value]
        return "[" + ",".join(items) + newline + "]"
    raise _Unusual


layout = _layout
quote = _quote
