"""The certificate's own log entry, proved under a later signed tree head.

The certificate is logged as an audit event in the same transaction as the
erasure; that batch signs a new tree head. A certificate bundle therefore also
carries, under ``later/``: that head (sth.txt + sth.sig, checked with openssl),
the audit event's exact bytes (event.cbor, whose details name the
certificate's SHA-256), its log leaf and audit path laid out as the bundle's
own ``proofs/`` are, so that the same ``check_proofs.sh`` checks it from inside
``later/``. Whoever holds the bundle can so prove, with sh, coreutils and
openssl only, that the certificate itself is in the tamper-evident log.
"""

from __future__ import annotations

import json

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import latest_tree_head, reader_log
from strongroom.office.proofs import entry_stem, json_bytes
from strongroom.office.sealed import SealedBundleWriter
from strongroom.office.verify_text import CHECK_PROOFS_SH_NAME, openssl_verify_command

LATER = "later"

_HEAD_CMD = f"(cd {LATER} && " + openssl_verify_command("sth.txt", "sth.sig", "../box.pem") + ")"
_PROOF_CMD = f"(cd {LATER} && sh ../{CHECK_PROOFS_SH_NAME})"
# grep -c prints how many lines match and fails (stopping a `sh -e` run) on none.
_NAMES_CMD = f'grep -c "$(sha256sum < certificate.json | cut -c1-64)" {LATER}/event.cbor'
_COMMITS_CMD = (
    f"od -An -v -tx1 {LATER}/proofs/*.leaf | tr -d ' \\n' |"
    f' grep -c "5820$(sha256sum < {LATER}/event.cbor | cut -c1-64)"'
)

LATER_FR = f"""
9. Le certificat lui-même est dans le journal, sous une tête d'arbre plus récente
   (signée, chemin d'audit vérifié par {CHECK_PROOFS_SH_NAME}) ; l'événement
   nomme le SHA-256 du certificat et sa feuille nomme celui de l'événement
   (chacune des deux dernières lignes affiche 1 ; 0 ou une erreur = falsifié) :
    $ {_HEAD_CMD}
    $ {_PROOF_CMD}
    $ {_NAMES_CMD}
    $ {_COMMITS_CMD}
"""
LATER_EN = f"""
9. The certificate itself is in the log, under a later signed tree head
   (signed, audit path checked by {CHECK_PROOFS_SH_NAME}); the event names the
   certificate's SHA-256 and its leaf names the event's (each of the last two
   lines prints 1; 0 or an error means tampering):
    $ {_HEAD_CMD}
    $ {_PROOF_CMD}
    $ {_NAMES_CMD}
    $ {_COMMITS_CMD}
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
    stem = entry_stem(cert_log_index)
    bundle.add_bytes(f"{LATER}/sth.txt", head.signed_message())
    bundle.add_bytes(f"{LATER}/sth.sig", head.signature)
    bundle.add_bytes(f"{LATER}/event.cbor", event)
    readable = {"at": int(row[0]), "actor": row[1], "action": row[2], "target": row[3]}
    readable["details"] = json.loads(str(row[4]))
    bundle.add_bytes(f"{LATER}/event.json", json_bytes(readable))
    bundle.add_bytes(f"{LATER}/proofs/{stem}.leaf", bytes(leaf[0]))
    bundle.add_bytes(f"{LATER}/proofs/{stem}.path", b"".join(path))
    return True
