"""Incremental verify: what is new since the last verified head, and a slice of the rest.

A full verify reads every record: minutes on a Pi with millions of records.
The nightly check instead starts from the signed tree head the last passing
verification checked (its size, root and signature are kept with it in the
`verifications` table, archive/verify_runs.py) and checks:

1. that head again: it must still be signed by this box;
2. the newest signed head: signed by this box, and an append-only extension
   of the verified one: the RFC 9162 consistency proof built from the stored
   nodes verifies, and the root recomputed from the verified head's stored
   frontier plus every new leaf (each rehashed from its data) is the newest
   root;
3. every new log entry exactly as the full verify does (record hash, device
   signature, the rows the UI shows, its leaf; audit events; blobs decrypted),
   and every stored interior node the new leaves completed;
   and, over the whole archive by index counts: no record, audit event, blob or
   destruction certificate names a leaf outside [0, newest size) (such a row is
   in no range a run reads), and the entries number as many as the leaves;
4. a rotating sample of the older log: leaves [from, to) rehashed against
   their stored nodes, the nodes above them, and the entries behind them. Each
   run re-reads 1/SAMPLE_RUNS of what the sweep has left, starting where the
   previous passing run stopped, but never more than SAMPLE_MAX leaves: up to
   SAMPLE_RUNS x SAMPLE_MAX leaves the whole log is re-read within SAMPLE_RUNS
   runs; beyond, a sweep takes older size / SAMPLE_MAX runs, so that a night
   stays seconds at any archive size (the weekly full verify reads everything).

What it leaves to the full verify: `PRAGMA quick_check` over every page, and
older entries outside this run's sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive.blobs import BlobStore
from strongroom.archive.db import Connection
from strongroom.archive.store import latest_tree_head, reader_log
from strongroom.archive.verify import RootAccumulator, add_leaf, verify_nodes
from strongroom.archive.verify_events import (
    count_entries,
    verify_audit_events,
    verify_blobs,
    verify_device_events,
    verify_log_refs,
)
from strongroom.archive.verify_records import Progress, VerifyReport, verify_records
from strongroom.proof.merkle import NodeMissingError, TreeSizeError, leaf_hash, verify_consistency
from strongroom.proof.sth import SignedTreeHead, verify_tree_head

# The older log is re-read in this many nightly runs (docs/operations.md)...
SAMPLE_RUNS = 30
# ... but a run re-reads at most this many older leaves: on a 5M-record archive a
# 1/30 slice is ~167,000 records (~10 s here, minutes on a Pi); 30,000 keeps a
# night in seconds (docs/benchmarks.md) and still tiles a 900,000-leaf log in 30.
SAMPLE_MAX = 30_000


@dataclass(frozen=True)
class Start:
    """Where an incremental run starts: the head the last passing run verified."""

    head: SignedTreeHead
    sample_to: int  # the older log was re-read up to here (exclusive)
    sweep_runs: int = 0  # runs of the sweep in progress so far (0: this one starts it)


@dataclass(frozen=True)
class Coverage:
    """What one run covered, for the `verifications` row and the integrity page."""

    from_size: int
    tree_size: int
    sample_from: int
    sample_to: int


def sample_range(
    start: Start, sample_runs: int = SAMPLE_RUNS, sample_max: int = SAMPLE_MAX
) -> tuple[int, int]:
    """The slice of the older log [0, start size) this run re-reads, from where the
    last one stopped; back to 0 once the end was reached.

    The rest of the sweep is shared among the runs it has left, so a sweep ends
    within `sample_runs` runs however fast the log grows meanwhile, unless that
    share is over `sample_max` leaves: then the slice is `sample_max` leaves and
    the sweep takes as many more runs as it needs.
    """
    older = start.head.tree_size
    if older == 0:
        return (0, 0)
    resume = 0 < start.sample_to < older and start.sweep_runs > 0
    first = start.sample_to if resume else 0
    runs_left = max(1, sample_runs - (start.sweep_runs if resume else 0))
    size = min(-(-(older - first) // runs_left), max(1, sample_max))  # ceil, capped
    return (first, min(older, first + size))


def verify_incremental(
    conn: Connection,
    blobs: BlobStore,
    box_key: bytes,
    start: Start,
    progress: Progress,
    *,
    witness: SignedTreeHead | None = None,
    sample_runs: int = SAMPLE_RUNS,
    sample_max: int = SAMPLE_MAX,
) -> tuple[VerifyReport, Coverage]:
    report = VerifyReport()
    old = start.head
    head = latest_tree_head(conn)
    report.tree_head = head
    size = head.tree_size if head is not None else 0
    sample = sample_range(start, sample_runs, sample_max)
    coverage = Coverage(old.tree_size, size, *sample)
    if not verify_tree_head(old, box_key):
        report.problem(
            f"log: the last verified tree head (size {old.tree_size}) is not signed by this box"
        )
        return report, coverage
    if head is None:
        report.problem("log: no signed tree head")
        return report, coverage
    if not verify_tree_head(head, box_key):
        report.problem(f"log: the signature of the tree head of size {size} is invalid")
        return report, coverage
    if size < old.tree_size:
        report.problem(
            f"log: the newest signed head covers {size} leaves, fewer than the"
            f" {old.tree_size} verified before: records were lost; restore from a backup"
        )
        return report, coverage
    _check_consistency(conn, old, head, report)
    witness = _check_kept_head(conn, old, head, witness, box_key, report)
    _check_new_leaves(conn, old, head, witness, report)
    verify_nodes(conn, size, report, old.tree_size, size)
    new_range = (old.tree_size, size)
    _check_entries(conn, blobs, progress, report, new_range)
    if sample[1] > sample[0]:
        _check_sample_leaves(conn, sample, report)
        verify_nodes(conn, old.tree_size, report, *sample)
        _check_entries(conn, blobs, progress, report, sample)
    verify_device_events(conn, report)
    _check_whole_log_accounted(conn, size, report)
    return report, coverage


def _check_whole_log_accounted(conn: Connection, size: int, report: VerifyReport) -> None:
    """What the ranges above cannot see: a row naming a leaf outside [0, size) is
    in none of them, and an extra entry sharing an older leaf with another table
    may sit outside the slice. Indexed counts, as cheap at any archive size."""
    verify_log_refs(conn, size, report)
    entries = count_entries(conn) + report.device_events
    if entries != size:
        report.problem(f"log: {size} leaves but {entries} archive entries refer to them")


def _check_consistency(
    conn: Connection, old: SignedTreeHead, head: SignedTreeHead, report: VerifyReport
) -> None:
    try:
        proof = reader_log(conn).consistency_proof(old.tree_size, head.tree_size)
    except (NodeMissingError, TreeSizeError) as exc:
        report.problem(f"log: no consistency proof from size {old.tree_size} ({exc})")
        return
    if not verify_consistency(old.tree_size, head.tree_size, old.root_hash, head.root_hash, proof):
        report.problem(
            f"log: the head of size {head.tree_size} is not an extension of the verified"
            f" head of size {old.tree_size} (consistency proof fails): the log was rewritten"
        )


def _check_kept_head(
    conn: Connection,
    old: SignedTreeHead,
    head: SignedTreeHead,
    witness: SignedTreeHead | None,
    box_key: bytes,
    report: VerifyReport,
) -> SignedTreeHead | None:
    """The kept head (kept_head.py) may lag the log. One no newer than the verified
    head is checked here, with a consistency proof to the newest head (its leaves
    are not rehashed in this run); a newer one is returned for _check_new_leaves,
    which meets its size while rehashing the new leaves."""
    if witness is None:
        return None
    if not verify_tree_head(witness, box_key):
        report.problem("log: the kept tree head (tree_head.latest) is not signed by this box")
        return None
    if witness.tree_size > old.tree_size:
        return witness
    try:
        proof = reader_log(conn).consistency_proof(witness.tree_size, head.tree_size)
    except (NodeMissingError, TreeSizeError) as exc:
        report.problem(f"log: no consistency proof from the kept head's size ({exc})")
        return None
    if not verify_consistency(
        witness.tree_size, head.tree_size, witness.root_hash, head.root_hash, proof
    ):
        report.problem(
            f"log: the records under the head the box signed at size {witness.tree_size}"
            " were rewritten"
        )
    return None


def _frontier(conn: Connection, size: int) -> list[tuple[int, bytes]]:
    """The stored roots of the perfect subtrees tiling [0, size), largest first."""
    out: list[tuple[int, bytes]] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            row = conn.execute(
                "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, start >> level)
            ).fetchone()
            if row is None:
                raise NodeMissingError(f"log node (level {level}, {start >> level}) is missing")
            out.append((level, bytes(row[0])))
            start += 1 << level
    return out


def _check_new_leaves(
    conn: Connection,
    old: SignedTreeHead,
    head: SignedTreeHead,
    witness: SignedTreeHead | None,
    report: VerifyReport,
) -> None:
    """Rehash every new leaf from its data onto the verified head's frontier: the
    root at the newest size must be the signed one."""
    try:
        acc = RootAccumulator.seeded(old.tree_size, _frontier(conn, old.tree_size))
    except NodeMissingError as exc:
        report.problem(f"log: {exc}")
        return
    if acc.root() != old.root_hash:
        report.problem(
            f"log: the stored nodes no longer give the verified root at size {old.tree_size}"
        )
        return
    expected = old.tree_size
    rows = conn.execute(
        "SELECT l.idx, l.leaf_data, n.hash FROM log_leaves l"
        " LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = l.idx"
        " WHERE l.idx >= ? ORDER BY l.idx",
        (old.tree_size,),
    )
    for idx, data, stored in rows:
        if idx != expected:
            report.problem(f"log: leaf {expected} is missing (next is {idx})")
            return
        add_leaf(acc, idx, data, stored, head, witness, report)
        expected += 1
        report.leaves += 1
    if acc.size < head.tree_size:
        report.problem(
            f"log: the signed tree head covers {head.tree_size} leaves, only {acc.size} exist"
        )
    if witness is not None and witness.tree_size > acc.size:
        report.problem(
            f"log: the box signed a tree head of size {witness.tree_size} but only {acc.size}"
            " leaves remain: acknowledged records were lost (damaged WAL or database file);"
            " restore from a backup"
        )


def _check_sample_leaves(conn: Connection, sample: tuple[int, int], report: VerifyReport) -> None:
    expected = sample[0]
    for idx, data, stored in conn.execute(
        "SELECT l.idx, l.leaf_data, n.hash FROM log_leaves l"
        " LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = l.idx"
        " WHERE l.idx >= ? AND l.idx < ? ORDER BY l.idx",
        sample,
    ):
        if idx != expected:
            report.problem(f"log: leaf {expected} is missing (next is {idx})")
            expected = idx
        if stored is None or bytes(stored) != leaf_hash(bytes(data)):
            report.problem(f"log leaf {idx}: stored hash does not match its data")
        expected += 1
        report.leaves += 1
    if expected != sample[1]:
        report.problem(f"log: leaf {expected} is missing")


def _check_entries(
    conn: Connection,
    blobs: BlobStore,
    progress: Progress,
    report: VerifyReport,
    log_range: tuple[int, int],
) -> None:
    """The records, audit events and blobs behind the leaves in `log_range`, and
    each of those leaves accounted for by exactly one of them."""
    before = report.records + report.audit_events + report.blobs
    verify_records(conn, progress, report, log_range)
    verify_audit_events(conn, report, log_range)
    verify_blobs(conn, blobs, progress, report, log_range)
    leaves, devices = conn.execute(
        "SELECT count(*), coalesce(sum(kind = 'device'), 0) FROM log_leaves"
        " WHERE idx >= ? AND idx < ?",
        log_range,
    ).fetchone()
    accounted = report.records + report.audit_events + report.blobs - before + int(devices)
    if accounted != int(leaves):
        report.problem(
            f"log [{log_range[0]}, {log_range[1]}): {leaves} leaves but {accounted}"
            " archive entries refer to them"
        )


__all__ = ["SAMPLE_MAX", "SAMPLE_RUNS", "Coverage", "Start", "sample_range", "verify_incremental"]
