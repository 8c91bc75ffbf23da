"""The certificate's own log entry, proved under a later signed tree head.

The certificate is logged as an audit event in the same transaction as the
erasure; that batch signs a new tree head. A certificate bundle therefore also
carries, under ``later/``: that head (sth.txt + sth.sig, checked with openssl),
the audit event's exact bytes (event.cbor, whose details name the certificate's
SHA-256), its log leaf and the inclusion proof to the later head, and a
stdlib-only check_later.py that ties them together. Whoever holds the bundle
can so prove the certificate itself is in the tamper-evident log.
"""

from __future__ import annotations

import json

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import latest_tree_head, reader_log
from strongroom.office.proofs import json_bytes
from strongroom.office.sealed import SealedBundleWriter, openssl_verify_command
from strongroom.proof.merkle import leaf_hash

LATER = "later"

CHECK_LATER_PY = '''\
"""The certificate is in the log: run python3 check_later.py (standard library only).

certificate.json's SHA-256 is named in later/event.cbor; SHA-256(event.cbor) is in the
leaf later/entry.leaf; the leaf's audit path leads to the root signed in later/sth.txt.
"""
import hashlib
import json
import pathlib
import sys


def node(left, right):
    return hashlib.sha256(b"\\x01" + left + right).digest()


def root_from_path(leaf, index, size, path):
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


here = pathlib.Path(__file__).resolve().parent
later = here / "later"
lines = (later / "sth.txt").read_text(encoding="ascii").split("\\n")
size, root = int(lines[1]), bytes.fromhex(lines[3])
certificate = hashlib.sha256((here / "certificate.json").read_bytes()).hexdigest()
event = (later / "event.cbor").read_bytes()
leaf = (later / "entry.leaf").read_bytes()
proof = json.loads((later / "entry.json").read_text(encoding="utf-8"))
checks = {
    "the event names the certificate's SHA-256": certificate.encode() in event,
    "the leaf commits to the event": hashlib.sha256(event).digest() in leaf,
    "the leaf is in the later signed tree": proof["tree_size"] == size
    and root_from_path(
        hashlib.sha256(b"\\x00" + leaf).digest(),
        proof["leaf_index"],
        size,
        [bytes.fromhex(h) for h in proof["audit_path"]],
    )
    == root,
}
for what, ok in checks.items():
    print(("OK      " if ok else "FAILED  ") + what)
sys.exit(0 if all(checks.values()) else 1)
'''

# Run from inside later/ (its own sth.txt), so the line starts with "(cd".
_LATER_CMD = (
    "(cd later && "
    + openssl_verify_command("sth.txt", "sth.sig").replace("box.pem", "../box.pem")
    + ")"
)
LATER_FR = f"""
8. Le certificat lui-même est dans le journal, sous une tête d'arbre plus récente :
    {_LATER_CMD}
    python3 check_later.py
"""
LATER_EN = f"""
8. The certificate itself is in the log, under a later signed tree head:
    {_LATER_CMD}
    python3 check_later.py
"""


def add_later_entry(bundle: SealedBundleWriter, conn: Connection, cert_log_index: int) -> bool:
    """Add later/…; False (nothing added) if no signed head covers the entry yet."""
    head = latest_tree_head(conn)
    row = conn.execute(
        "SELECT at, actor, action, target, details FROM audit_events WHERE log_index = ?",
        (cert_log_index,),
    ).fetchone()
    if head is None or row is None or head.tree_size <= cert_log_index:
        return False
    leaf = conn.execute(
        "SELECT leaf_data FROM log_leaves WHERE idx = ?", (cert_log_index,)
    ).fetchone()
    event = writes.audit_content(int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]))
    path = reader_log(conn).inclusion_proof(cert_log_index, head.tree_size)
    leaf_bytes = bytes(leaf[0])
    bundle.add_bytes(f"{LATER}/sth.txt", head.signed_message())
    bundle.add_bytes(f"{LATER}/sth.sig", head.signature)
    bundle.add_bytes(f"{LATER}/event.cbor", event)
    readable = {"at": int(row[0]), "actor": row[1], "action": row[2], "target": row[3]}
    readable["details"] = json.loads(str(row[4]))
    bundle.add_bytes(f"{LATER}/event.json", json_bytes(readable))
    bundle.add_bytes(f"{LATER}/entry.leaf", leaf_bytes)
    proof = {
        "leaf_index": cert_log_index,
        "tree_size": head.tree_size,
        "leaf_hash": leaf_hash(leaf_bytes).hex(),
        "audit_path": [node.hex() for node in path],
        "root_hash": head.root_hash.hex(),
    }
    bundle.add_bytes(f"{LATER}/entry.json", json_bytes(proof))
    bundle.add_bytes("check_later.py", CHECK_LATER_PY.encode())
    return True
