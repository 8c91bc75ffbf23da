"""Consistency proofs (RFC 9162 §2.1.4) from the heads the box published before.

Every earlier export and destruction certificate carries a signed tree head.
A new export holds, for each of those earlier heads (the newest MAX_HEADS),
the head itself and the proof that this export's log extends it:

    consistency/S<size>.txt   the earlier head, byte for byte what the box signed
    consistency/S<size>.sig   its signature by box.pem
    consistency/S<size>.path  the proof as raw 32-byte nodes; when <size> is a
                              power of two the earlier root comes first (the
                              RFC's verifier prepends it), so check_proofs.sh
                              walks the file as it is

Whoever holds an earlier bundle compares its sth.txt with the file of the same
size here (same bytes): then both come from one append-only log, or the box
forked its log and its signatures prove it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from strongroom.archive.db import Connection
from strongroom.office.sealed import SealedBundleWriter
from strongroom.proof.merkle import MerkleLog, verify_consistency
from strongroom.proof.sth import SignedTreeHead

MAX_HEADS = 200
DIRECTORY = "consistency"


def stem(size: int) -> str:
    return f"{DIRECTORY}/S{size:010d}"


def _published_sizes(conn: Connection) -> set[int]:
    sizes: set[int] = set()
    for (details,) in conn.execute("SELECT details FROM audit_events WHERE action = 'export'"):
        try:
            sizes.add(int(json.loads(details)["tree_size"]))
        except (ValueError, KeyError, TypeError):
            continue
    try:
        rows = conn.execute("SELECT certificate FROM destruction_certificates").fetchall()
    except Exception:  # an archive without the records office's tables
        rows = []
    for (certificate,) in rows:
        try:
            sizes.add(int(json.loads(bytes(certificate))["tree_head"]["tree_size"]))
        except (ValueError, KeyError, TypeError):
            continue
    return sizes


def published_heads(conn: Connection, head: SignedTreeHead) -> list[SignedTreeHead]:
    """The signed heads earlier bundles carried, smaller than `head`, newest first."""
    sizes = sorted((s for s in _published_sizes(conn) if 0 < s < head.tree_size), reverse=True)
    heads = []
    for size in sizes[:MAX_HEADS]:
        row = conn.execute(
            "SELECT tree_size, root_hash, timestamp_ms, signature FROM tree_heads"
            " WHERE tree_size = ?",
            (size,),
        ).fetchone()
        if row is not None:
            heads.append(SignedTreeHead(int(row[0]), bytes(row[1]), int(row[2]), bytes(row[3])))
    return heads


def seeded_path(old: SignedTreeHead, proof: list[bytes]) -> bytes:
    size = old.tree_size
    seed = [old.root_hash] if size & (size - 1) == 0 else []
    return b"".join(seed + proof)


def write_consistency(bundle: SealedBundleWriter, log: MerkleLog, conn: Connection) -> int:
    """Add the proofs from every earlier published head; return how many."""
    head = bundle.tree_head
    count = 0
    for old in published_heads(conn, head):
        proof = log.consistency_proof(old.tree_size, head.tree_size)
        name = stem(old.tree_size)
        bundle.add_bytes(f"{name}.txt", old.signed_message())
        bundle.add_bytes(f"{name}.sig", old.signature)
        bundle.add_bytes(f"{name}.path", seeded_path(old, proof))
        count += 1
    return count


@dataclass(frozen=True)
class ConsistencyCheck:
    old_size: int
    ok: bool
    why: str = ""


def check_consistency(
    old_text: bytes, old_sig: bytes, path: bytes, head: SignedTreeHead, verify: object
) -> ConsistencyCheck:
    """Is this earlier head signed (by `verify`, a callable(message, sig) -> bool) and
    extended by `head` according to the proof?"""
    from strongroom.office.verify_export import _parse_sth  # one parser for sth texts

    old = _parse_sth(old_text)
    if old is None:
        return ConsistencyCheck(0, False, "is not a strongroom-sth-v1 tree head")
    assert callable(verify)
    if not verify(old_text, old_sig):
        return ConsistencyCheck(old.tree_size, False, "its signature does not verify")
    if len(path) % 32:
        return ConsistencyCheck(old.tree_size, False, "the proof is not whole 32-byte nodes")
    nodes = [path[i : i + 32] for i in range(0, len(path), 32)]
    size = old.tree_size
    if size & (size - 1) == 0:
        if not nodes or nodes[0] != old.root_hash:
            return ConsistencyCheck(size, False, "the proof does not start with the old root")
        nodes = nodes[1:]
    if not verify_consistency(size, head.tree_size, old.root_hash, head.root_hash, nodes):
        return ConsistencyCheck(size, False, "the log in sth.txt does not extend it")
    return ConsistencyCheck(size, True)


def check_bundle_consistency(
    names: Iterable[str],
    read: Callable[[str], bytes | None],
    head: SignedTreeHead,
    verify: Callable[[bytes, bytes], bool],
) -> list[tuple[str, ConsistencyCheck]]:
    """Every consistency/S<m>.txt of a bundle, checked against its tree head."""
    results = []
    for name in sorted(n for n in names if n.startswith(f"{DIRECTORY}/") and n.endswith(".txt")):
        base = name[: -len(".txt")]
        text, sig, path = read(name), read(f"{base}.sig"), read(f"{base}.path")
        if text is not None and sig is not None and path is not None:
            results.append((name, check_consistency(text, sig, path, head, verify)))
    return results
