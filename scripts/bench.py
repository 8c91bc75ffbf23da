"""`make bench`: run every benchmark and write ONE table to docs/benchmarks.md.

    python scripts/bench.py --write docs/benchmarks.md   # full run (~15 min on 2 cores)
    BENCH_GROWTH_SIZES=1000000 python scripts/bench.py ... # without the 5M corpus
    python scripts/bench.py --quick                      # smoke run (< 60 s), table on stdout

Each figure is shown with a ceiling measured in the same run on the same
machine and the ratio value / ceiling, so the numbers mean something on any
machine. A benchmark that cannot run says why in its row; no figure is ever
invented.

The full run's growth rows need a 1,000,000- and a 5,000,000-message corpus under
var/bench (1 and 5.3 GB, plus a plain-SQLite copy of each for the search ceiling).
They are built once and cached (scripts/bench_corpus.py: the bulk op writes the
rows store_record writes, tests/test_bench_corpus.py; no WAL or fsync while
building; two processes sign while one writes). The first run also builds them,
and starts a cold Synapse install in the background beside them. Measured on this
2-core machine shared with six other sessions (load average 7 to 9 during the
builds): the whole first run 1,388 s (23 min; 1M from empty 174 s, 1M -> 5M 599 s,
Synapse's section 43 s with its install hidden under the builds). CPU per record
46 µs writing + 31 µs signing: on two free cores the writer bounds the builds at
~46 µs a record, ~230 s for both corpora instead of 773, which puts a first run
near 14 minutes (extrapolated, not measured). The `corpus build` rows give the
time and CPU each took.

Peer-level figures (ingest over Noise, attachments, handshakes, box memory)
come from `scripts/bench_peer.py` when it exists: its functions `bench_ingest`,
`bench_attachments` and `bench_handshakes` each return a list of
`bench_archive.Figure` (or of dicts with the same field names: name, value,
unit, ceiling, ceiling_what, aim, note). They may take `quick` and `work_dir`
keyword arguments and may be coroutines.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(REPO / "app"))

import bench_archive as ba  # noqa: E402
import bench_export  # noqa: E402
import bench_growth  # noqa: E402
import bench_growth_rounds  # noqa: E402
import bench_peer  # noqa: E402
import bench_reads  # noqa: E402
import bench_restore  # noqa: E402
import bench_service  # noqa: E402
import bench_synapse  # noqa: E402
import bench_verify  # noqa: E402
from bench_archive import Figure  # noqa: E402
from bench_report import git_commit, kept_notes, machine, render  # noqa: E402


@dataclass(frozen=True)
class Plan:
    """How big each benchmark is: the full run and the quick smoke run differ only here."""

    quick: bool
    ingest_messages: int
    paced_seconds: float
    search_messages: int
    search_rounds: int
    verify_records: int
    export_messages: int
    soak_seconds: float
    # Growth (issue #20): corpus sizes ingested into and restored from, built once
    # under var/bench through the bulk write path (a bigger one by extending a copy
    # of a smaller one). The full run uses 1M (the search corpus) and 5M;
    # BENCH_GROWTH_SIZES=1000000 replaces them (e.g. to skip building 5M).
    growth_sizes: tuple[int, ...] = ()
    growth_messages: int = 0


def make_plan(quick: bool, soak_seconds: float | None) -> Plan:
    chosen = tuple(int(n) for n in os.environ.get("BENCH_GROWTH_SIZES", "").split(",") if n)
    if quick:
        # 30,000: a corpus extended from the 20,000 one, searched like the biggest.
        sizes = tuple(sorted({20_000, 30_000, *chosen}))
        return Plan(True, 3_000, 1.0, 20_000, 3, 20_000, 1_000, soak_seconds or 15.0, sizes, 2_000)
    sizes = tuple(sorted(set(chosen or (1_000_000, 5_000_000))))
    return Plan(
        False, 20_000, 5.0, 1_000_000, 5, 100_000, 10_000, soak_seconds or 120.0, sizes, 20_000
    )


# -- the sections -------------------------------------------------------------------------


def ingest_section(plan: Plan, work: Path) -> list[Figure]:
    ceiling = ba.ingest_ceiling(work, plan.ingest_messages)
    run = ba.committer_ingest(work, plan.ingest_messages)
    paced = ba.committer_ingest(work, int(1000 * plan.paced_seconds), rate=1000.0)
    who = f"{plan.ingest_messages:,} x 1 KiB"
    return [
        Figure(
            "archive ingest ceiling: direct write_batch of store_record, 500/batch",
            ceiling,
            "msgs/s",
            note=f"{who}, one thread, SQLCipher WAL synchronous=FULL",
        ),
        Figure(
            "archive ingest through GroupCommitter (10 producers x 64 in flight)",
            run.msgs_per_s,
            "msgs/s",
            ceiling,
            "direct write_batch",
            "peer-level: >= 5,000 msgs/s and >= 0.5 of ceiling",
            f"{who}, {run.batches} group commits",
        ),
        Figure(
            "GroupCommitter ack latency p50 (saturated)",
            run.p50_ms,
            "ms",
            note="submit to durable ack, 640 in flight",
        ),
        Figure(
            "GroupCommitter ack latency p99 (saturated)",
            run.p99_ms,
            "ms",
            note="queueing dominates at saturation",
        ),
        Figure(
            "GroupCommitter ack latency p99 at 1,000 msgs/s offered",
            paced.p99_ms,
            "ms",
            aim="< 50 ms (peer-level)",
            note=f"p50 {paced.p50_ms:.1f} ms, achieved {paced.msgs_per_s:.0f} msgs/s",
        ),
        Figure(
            "bench process RSS idle (archive open, records pre-signed)",
            run.idle_rss_mib,
            "MiB",
            aim="box idle < 60 MiB (peer-level)",
        ),
        Figure(
            "bench process peak RSS during committer ingest",
            run.peak_rss_mib,
            "MiB",
            aim="box under load < 150 MiB (peer-level)",
            note="VmHWM reset before the run; includes the pre-signed records",
        ),
    ]


def search_section(plan: Plan, work: Path) -> list[Figure]:
    archive_dir = ba.cached_archive(work, plan.search_messages, log=_log)
    run = bench_reads.search_latency(archive_dir, plan.search_rounds)
    size = f"{plan.search_messages:,} messages, {run.queries} queries"
    what = "same query, plain sqlite3 copy"
    return [
        Figure(
            f"full-text search p50 over {plan.search_messages:,} messages",
            run.p50_ms,
            "ms",
            run.plain_p50_ms,
            what,
            note=size + ", newest 50 with joins",
        ),
        Figure(
            f"full-text search p95 over {plan.search_messages:,} messages",
            run.p95_ms,
            "ms",
            run.plain_p95_ms,
            what,
            note=size,
        ),
    ]


def verify_section(plan: Plan, work: Path) -> list[Figure]:
    # Incremental verify of a day at every growth size (1M and 5M in the full run).
    default = (plan.search_messages,) if plan.quick else plan.growth_sizes
    sizes = bench_verify.sizes_from_env(default)
    return bench_verify.verify_figures(work, plan.verify_records, sizes, log=_log)


def export_section(plan: Plan, work: Path) -> list[Figure]:
    name = f"sealed export of a {plan.export_messages:,}-message conversation"
    try:
        import strongroom.office.export  # noqa: F401
    except ImportError as exc:
        return [Figure(name, None, "s", note=f"not available: {exc}")]
    run = bench_reads.export_time(work, plan.export_messages)
    verdict = "verifies" if run.verified else "DOES NOT VERIFY"
    return [
        Figure(
            name,
            run.seconds,
            "s",
            run.zip_floor_seconds,
            "zip of the same signed records, SHA-256 each",
            note=f"{run.records:,} records, HTML + PDF + proofs, {run.bundle_mib:.1f} MiB;"
            f" CPU of the export's thread {run.cpu_seconds:.2f} s / the floor's"
            f" {run.floor_cpu_seconds:.2f} s = {run.cpu_seconds / run.floor_cpu_seconds:.2f}",
        ),
        Figure(
            "verify-export of that bundle",
            run.verify_seconds,
            "s",
            note=f"office.verify_export.verify_bundle: {verdict}",
        ),
        *bench_export.export_rss_figures(work, 2_000 if plan.quick else 100_000),
    ]


def start_section(plan: Plan, work: Path) -> list[Figure]:
    archive_dir = ba.cached_archive(work, plan.search_messages, log=_log)
    run = bench_service.start_to_ready(archive_dir)
    size = f"{plan.search_messages:,}-message archive"
    what = "plain sqlite3 open + same tree-head query"
    return [
        Figure(
            f"Archive.open + first signed tree head, {size}",
            run.archive_open_ms,
            "ms",
            run.plain_open_ms,
            what,
            "milliseconds (raw key, no PBKDF2)",
            "median of 5",
        ),
        Figure(
            f"service start to first HTTP 200, {size}",
            run.runtime_ready_ms,
            "ms",
            run.archive_open_ms,
            "Archive.open + tree head: the archive's share",
            note=run.runtime_note,
        ),
    ]


def soak_section(plan: Plan, work: Path) -> list[Figure]:
    run = bench_service.soak(work, plan.soak_seconds)
    what = f"{run.cycles} cycles, {run.messages:,} messages, {plan.soak_seconds:.0f} s"
    verified = "every verify OK" if run.verify_ok else "A VERIFY FAILED"
    return [
        Figure(
            "soak: RSS at end (committer ingest + search + verify cycles)",
            run.rss_end_mib,
            "MiB",
            run.rss_start_mib,
            "RSS at start",
            "flat",
            f"{what}; {verified}",
        ),
        Figure(
            "soak: open file descriptors at end",
            run.fds_end,
            "fds",
            run.fds_start,
            "fds at start",
            "flat",
            what,
        ),
    ]


def _as_figures(source: str, result: Any) -> list[Figure]:
    """Accept Figure objects, dicts with Figure's field names, or lists of either."""
    if result is None:
        return []
    if isinstance(result, list | tuple):
        return [f for item in result for f in _as_figures(source, item)]
    if isinstance(result, Figure):
        return [result]
    fields = (
        result
        if isinstance(result, dict)
        else vars(result)
        if hasattr(result, "__dict__")
        else None
    )
    if isinstance(fields, dict) and "value" in fields:
        value = fields.get("value")
        ceiling = fields.get("ceiling")
        return [
            Figure(
                str(fields.get("name") or fields.get("figure") or source),
                None if value is None else float(value),
                str(fields.get("unit", "")),
                None if ceiling is None else float(ceiling),
                str(fields.get("ceiling_what", "")),
                str(fields.get("aim", "")),
                str(fields.get("note", "")),
            )
        ]
    return [Figure(source, None, "", note=f"unrecognised result: {result!r}"[:160])]


def peer_section(plan: Plan, work: Path) -> list[Figure]:
    try:
        bench_peer = importlib.import_module("bench_peer")
    except ModuleNotFoundError:
        print("peer benchmarks: not available")
        return [
            Figure(
                "peer benchmarks (ingest over Noise, attachments, handshakes)",
                None,
                "",
                note="not available: scripts/bench_peer.py is absent",
            )
        ]
    figures: list[Figure] = []
    for name in ("bench_ingest", "bench_attachments", "bench_handshakes"):
        function = getattr(bench_peer, name, None)
        if function is None:
            figures.append(Figure(f"bench_peer.{name}", None, "", note="not available"))
            continue
        (work / "peer").mkdir(exist_ok=True)
        offered = {"quick": plan.quick, "work_dir": work / "peer"}
        accepted = inspect.signature(function).parameters
        kwargs = {k: v for k, v in offered.items() if k in accepted}
        try:
            # A fresh process each: the box's RSS figures are then the box's own, not
            # this process's after the archive benchmarks (it holds their corpora).
            result = bench_peer.wait_for_child(
                bench_peer.start_in_fresh_process(function, **kwargs)
            )
            figures += _as_figures(f"bench_peer.{name}", result)
        except Exception as exc:
            traceback.print_exc()
            figures.append(Figure(f"bench_peer.{name}", None, "", note=f"failed: {exc!r}"[:160]))
    return figures


def growth_section(plan: Plan, work: Path) -> list[Figure]:
    searched = tuple(s for s in plan.growth_sizes if s != plan.search_messages)
    # Interleaved rounds (empty, 1M, 5M, empty, ...): the rows give medians and spread.
    return bench_growth_rounds.growth_figures(
        work,
        plan.growth_sizes,
        plan.growth_messages,
        _log,
        searched,
        plan.search_rounds,
        rounds=2 if plan.quick else 3,
        # Ingest + idle merge, amortised: 3 x 2,000 records at 30,000 in the quick run.
        long_run=(3, plan.growth_messages) if plan.quick else (8, 20_000),
    )


def restore_section(plan: Plan, work: Path) -> list[Figure]:
    figures = bench_growth.restore_figures(work, max(plan.growth_sizes), _log)
    (work / "peer").mkdir(exist_ok=True)
    # The reference client over Noise, the box in a fresh process (its own RSS and cores).
    # 100,000 messages and 1 GiB of attachments in the full run (1M would add ~10 min
    # of filling; the row extrapolates), 2,000 and 4 MiB in the quick one.
    size, blob_mib = (2_000, 4) if plan.quick else (100_000, 1024)
    child = bench_peer.start_in_fresh_process(
        bench_restore.bench_restore, size, work / "peer", blob_mib
    )
    return figures + _as_figures("bench_restore", bench_peer.wait_for_child(child))


SECTIONS: list[tuple[str, Callable[[Plan, Path], list[Figure]]]] = [
    ("ingest and memory", ingest_section),
    ("growth: ingest, writes, disk, memory", growth_section),
    ("growth: new-phone restore", restore_section),
    ("peer protocol", peer_section),
    (
        "peer: Strongroom vs Matrix Synapse",
        lambda p, w: bench_synapse.bench_synapse_figures(p.quick, w),
    ),
    ("full-text search", search_section),
    ("verify", verify_section),
    ("records office reads", importlib.import_module("bench_office").office_section),
    (
        "night jobs and office pages",
        lambda p, w: importlib.import_module("bench_night").night_section(p, w, _log),
    ),
    (
        "destruction",
        lambda p, w: importlib.import_module("bench_destroy").destroy_section(p, w, _log),
    ),
    ("export", export_section),
    ("start to ready", start_section),
    ("soak", soak_section),
]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run, table on stdout only")
    parser.add_argument("--write", type=Path, help="write the report to this markdown file")
    parser.add_argument("--soak-seconds", type=float, help="soak length (120 full, 15 quick)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "var" / "bench",
        help="where cached archives live (default var/bench)",
    )
    args = parser.parse_args(argv)
    plan = make_plan(args.quick, args.soak_seconds)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not plan.quick:
        # Overlapped with the corpus builds; the Synapse section waits for it.
        bench_synapse.install_in_background()
    figures: list[Figure] = []
    failed = 0
    for title, section in SECTIONS:
        t0 = time.perf_counter()
        _log(f"bench: {title} ...")
        try:
            figures += section(plan, work)
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed += 1
            figures.append(Figure(f"{title}", None, "", note=f"failed: {exc!r}"[:160]))
        _log(f"bench: {title} done in {time.perf_counter() - t0:.1f} s")
    total = time.perf_counter() - started
    mode = "quick smoke run (`--quick`)" if plan.quick else "full run (`make bench`)"
    header = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.py` (`make bench`); do not edit by hand. Every ceiling is"
        " measured in the same run on the same machine; ratio = value / ceiling (for times and"
        " latencies a ratio above 1 is the cost over the ceiling).",
        "",
        f"- Machine: {machine()}",
        f"- Date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Commit: {git_commit()}",
        f"- Mode: {mode}; whole run {total:.0f} s",
    ]
    report = render(figures, header)
    print(report)
    if args.write and not plan.quick:
        args.write.write_text(report + kept_notes(args.write), encoding="utf-8")
        _log(f"bench: wrote {args.write}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
