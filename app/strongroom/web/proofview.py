"""Checking a record's proof live, for the record page.

Four independent checks, each shown on its own: the record's bytes hash to
its id, the log leaf commits to that id, the leaf is included in the latest
tree (RFC 6962 inclusion proof recomputed here), and the tree head carries
the box's valid Ed25519 signature. The device's own signature over the record
is checked too. Runs on a reader connection, never on the writer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.archive.db import Connection
from strongroom.archive.listings import RecordView
from strongroom.archive.record import RECORD_SIGNING_CONTEXT, leaf_data
from strongroom.archive.store import Archive, reader_log
from strongroom.proof.merkle import leaf_hash, verify_inclusion
from strongroom.proof.sth import SignedTreeHead, verify_tree_head


@dataclass(frozen=True)
class ProofCheck:
    log_index: int
    leaf_hash: bytes
    tree_head: SignedTreeHead | None
    audit_path: list[bytes]
    content_matches: bool | None  # None: content destroyed by retention
    device_signature_ok: bool | None
    leaf_matches: bool
    included: bool
    head_signature_ok: bool

    @property
    def verified(self) -> bool:
        return (
            self.content_matches is not False
            and self.device_signature_ok is not False
            and self.leaf_matches
            and self.included
            and self.head_signature_ok
        )


def _device_signature_ok(record: RecordView) -> bool | None:
    if record.body is None or record.signature is None:
        return None
    try:
        VerifyKey(record.device_sign_key).verify(
            RECORD_SIGNING_CONTEXT + record.body, record.signature
        )
    except (BadSignatureError, ValueError):
        return False
    return True


def check_record_proof(conn: Connection, archive: Archive, record: RecordView) -> ProofCheck:
    head = archive.latest_tree_head(conn)
    leaf = leaf_hash(record.leaf_data)
    content_matches = (
        None if record.body is None else hashlib.sha256(record.body).digest() == record.record_id
    )
    expected_leaf = leaf_data(record.kind, record.record_id, record.received_at)
    path: list[bytes] = []
    included = False
    head_ok = False
    if head is not None and record.log_index < head.tree_size:
        path = reader_log(conn).inclusion_proof(record.log_index, head.tree_size)
        included = verify_inclusion(leaf, record.log_index, head.tree_size, path, head.root_hash)
        head_ok = verify_tree_head(head, bytes(archive.signing_key.verify_key))
    return ProofCheck(
        log_index=record.log_index,
        leaf_hash=leaf,
        tree_head=head,
        audit_path=path,
        content_matches=content_matches,
        device_signature_ok=_device_signature_ok(record),
        leaf_matches=expected_leaf == record.leaf_data,
        included=included,
        head_signature_ok=head_ok,
    )
