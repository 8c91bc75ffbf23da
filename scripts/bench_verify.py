"""`make bench` rows for verify (issue #20 item 2): the full verify against its crypto
ceiling, and the nightly incremental verify of one day's records on a large archive.

    BENCH_VERIFY_SIZES=1000000,5000000 python scripts/bench.py ...

sets the archive sizes of the incremental row (default: the growth corpora,
1,000,000 and 5,000,000, in the full run; the 20,000 corpus in --quick); each is
the cached corpus of that size (bench_archive.cached_archive), built once under
var/bench. The run writes `verifications` rows into that corpus.

Ceilings, measured in the same run: SHA-256 + Ed25519 verify of the same
records on one core (the crypto a verify cannot avoid). The full verify uses
both cores, so it can go under 1; its note also gives the CPU time it used
(its processes and threads together) against the ceiling's.

The incremental row needs "yesterday's" verified head without adding records
to the shared corpus: the bench signs, with the box's own key, the head of the
log as it stood one day of records ago (the root from the stored nodes), keeps
it as a passing verification, and times the incremental run from there: the
day's records, the consistency proof, the rotating slice of the older log (1/30
of the sweep's rest, at most verify_incremental.SAMPLE_MAX leaves).
"""

from __future__ import annotations

import hashlib
import os
import resource
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import bench_archive as ba
from bench_archive import Figure
from nacl.signing import VerifyKey

from strongroom.archive.db import Connection
from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.archive.store import Archive, Txn, reader_log
from strongroom.archive.verify import page_check_of, verify_archive
from strongroom.archive.verify_incremental import SAMPLE_MAX
from strongroom.archive.verify_runs import run_verification
from strongroom.proof.sth import sign_tree_head

# One day of a busy practice: about a million records a year.
DAY_RECORDS = 3_000
CEILING = "SHA-256 + Ed25519 verify of the same records, one core"


def _cpu_s() -> float:
    """CPU time of this process and its finished children (the signature workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _crypto_ceiling(conn: Connection, where: str, args: tuple[int, ...]) -> tuple[float, float]:
    """(wall, CPU) seconds of SHA-256 + Ed25519 over the records `where` selects."""
    keys = {
        int(i): VerifyKey(bytes(k)) for i, k in conn.execute("SELECT id, sign_key FROM devices")
    }
    rows = [
        (bytes(body), bytes(sig), keys[int(device)])
        for body, sig, device in conn.execute(
            "SELECT body, signature, device_id FROM records WHERE body IS NOT NULL AND " + where,
            args,
        )
    ]
    cpu0, t0 = _cpu_s(), time.perf_counter()
    for body, sig, key in rows:
        hashlib.sha256(body).digest()
        key.verify(RECORD_SIGNING_CONTEXT + body, sig)
    return time.perf_counter() - t0, _cpu_s() - cpu0


@dataclass(frozen=True)
class FullRun:
    seconds: float
    cpu_seconds: float
    records: int
    ceiling_seconds: float
    ceiling_cpu_seconds: float
    ok: bool


def full_verify(archive_dir: Path) -> FullRun:
    """verify_archive as the box runs it (page check on its own reader, signature
    workers), between two measures of the ceiling (their mean: the machine is shared)."""
    archive = ba.open_archive(archive_dir / "data")
    try:
        with closing(archive.reader()) as reader:
            before = _crypto_ceiling(reader, "1", ())
            cpu0, t0 = _cpu_s(), time.perf_counter()
            report = verify_archive(
                reader,
                archive.blobs,
                bytes(archive.signing_key.verify_key),
                page_check=page_check_of(archive),
            )
            seconds, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
            after = _crypto_ceiling(reader, "1", ())
    finally:
        archive.close()
    return FullRun(
        seconds,
        cpu,
        report.records,
        (before[0] + after[0]) / 2,
        (before[1] + after[1]) / 2,
        report.ok,
    )


@dataclass(frozen=True)
class IncrementalRun:
    size: int
    seconds: float
    records: int
    new_leaves: int
    sample: tuple[int, int]
    ceiling_seconds: float
    ok: bool


def _yesterday(archive: Archive, day: int) -> int:
    """Keep, as a passing verification, the box-signed head of the log `day` records ago."""
    with closing(archive.reader()) as conn:
        size = int(conn.execute("SELECT coalesce(max(tree_size), 0) FROM tree_heads").fetchone()[0])
        old = max(0, size - day)
        root = reader_log(conn).root(old)
    head = sign_tree_head(archive.signing_key, old, root, int(time.time() * 1000) - 86_400_000)

    def keep(txn: Txn) -> None:
        txn.conn.execute(
            "INSERT INTO verifications (kind, started_at, finished_at, ok, from_size, tree_size,"
            " root_hash, head_timestamp_ms, head_signature, records, leaves, sample_from,"
            " sample_to, sweep_started_at, problems) VALUES ('full', ?, ?, 1, 0, ?, ?, ?, ?, 0,"
            " 0, 0, ?, ?, 0)",
            (
                head.timestamp_ms,
                head.timestamp_ms,
                old,
                root,
                head.timestamp_ms,
                head.signature,
                old,
                head.timestamp_ms,
            ),
        )

    archive.write(keep)
    return old


def incremental_verify(archive_dir: Path, day: int = DAY_RECORDS) -> IncrementalRun:
    archive = ba.open_archive(archive_dir / "data")
    try:
        _yesterday(archive, day)
        t0 = time.perf_counter()
        report, run = run_verification(archive, "incremental")
        seconds = time.perf_counter() - t0
        with closing(archive.reader()) as reader:
            ceiling, _ = _crypto_ceiling(
                reader,
                "((log_index >= ? AND log_index < ?) OR (log_index >= ? AND log_index < ?))",
                (run.from_size, run.tree_size, run.sample_from, run.sample_to),
            )
    finally:
        archive.close()
    assert run.kind == "incremental", run
    return IncrementalRun(
        run.tree_size,
        seconds,
        run.records,
        run.tree_size - run.from_size,
        (run.sample_from, run.sample_to),
        ceiling,
        report.ok,
    )


def verify_figures(
    work: Path, full_records: int, sizes: tuple[int, ...], log: Callable[[str], None] = print
) -> list[Figure]:
    """The verify rows of `make bench` (bench.py's one call line)."""
    full = full_verify(ba.cached_archive(work, full_records, log=log))
    scale = 100_000 / max(full.records, 1)
    figures = [
        Figure(
            "full verify per 100,000 records (both cores) / crypto ceiling",
            full.seconds * scale,
            "s",
            full.ceiling_seconds * scale,
            CEILING,
            "<= 1.2x",
            f"measured on {full.records:,} records, {'OK' if full.ok else 'PROBLEMS FOUND'};"
            f" CPU {full.cpu_seconds * scale:.1f} s (workers included) vs the ceiling's"
            f" {full.ceiling_cpu_seconds * scale:.1f} s",
        )
    ]
    for size in sizes:
        run = incremental_verify(ba.cached_archive(work, size, log=log))
        figures.append(
            Figure(
                f"incremental verify of one day ({DAY_RECORDS:,} records) on a {size:,}-record"
                " archive",
                run.seconds,
                "s",
                run.ceiling_seconds,
                CEILING + " (those it checked)",
                "seconds (at 5M)",
                f"{run.records:,} records checked: the day's and the older log's slice"
                f" {run.sample[0]:,}-{run.sample[1]:,} (1/30 of the sweep's rest, at most"
                f" {SAMPLE_MAX:,}); {run.new_leaves:,} new leaves"
                f" against a consistency proof; {'OK' if run.ok else 'PROBLEMS FOUND'}",
            )
        )
    return figures


def sizes_from_env(default: tuple[int, ...]) -> tuple[int, ...]:
    chosen = os.environ.get("BENCH_VERIFY_SIZES", "")
    return tuple(int(n) for n in chosen.split(",") if n) or default


__all__ = ["DAY_RECORDS", "full_verify", "incremental_verify", "sizes_from_env", "verify_figures"]
