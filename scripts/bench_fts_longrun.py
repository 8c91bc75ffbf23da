"""Bytes written per record over many rounds of ingest and idle merge (issue #20 item 1).

The growth rows measure one 20,000-record ingest and the idle merge after it: a snapshot
of a lumpy process. An FTS5 level is merged only when it fills, so one window pays for
a merge of a level many windows filled, and the next ones for none. What an SD card
sees is the long-run average: this row ingests ROUNDS rounds of COUNT records through
the GroupCommitter (the growth rows' path, bench_growth.growth_ingest), each followed
by an idle spell in which a group committer with nothing to commit runs its idle merge
(archive/fts_merge.py) until nothing is due, as on a box; every byte SQLite hands to
write() (wchar, the growth rows' counter, each window's last checkpoint included) over
all records, ingest and merges.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import bench_archive as ba
import bench_growth as bg
import bench_search_after

from strongroom.archive import fts_merge
from strongroom.archive.committer import GroupCommitter

# Records per round, rounds: 8 x 20,000 covers a merge of every small level at 5M.
COUNT = 20_000
ROUNDS = 8
IDLE_LIMIT_S = 600.0


@dataclass(frozen=True)
class Round:
    ingest_written: int  # wchar of the ingest (growth_ingest's window, checkpoint included)
    merge_written: int  # wchar of the idle spell (committer start to stop + checkpoint)
    steps: int  # idle merge steps run
    segments_ingested: int  # after the ingest
    segments_merged: int  # after the idle merge
    ingest_cpu_us: float  # per record, the ingest's process CPU
    merge_cpu_s: float  # the idle spell's process CPU
    merge_s: float  # the idle spell's wall time
    merge_ended: bool = True  # False: set aside after a failed step, or past IDLE_LIMIT_S


@dataclass
class LongRun:
    count: int
    rounds: list[Round] = field(default_factory=list)
    segments: int = 0  # at the end
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    load: float = float("nan")

    @property
    def records(self) -> int:
        return self.count * len(self.rounds)

    def kib_per_record(self, merge: bool = True, ingest: bool = True) -> float:
        total = sum(
            (r.ingest_written if ingest else 0) + (r.merge_written if merge else 0)
            for r in self.rounds
        )
        return total / max(1, self.records) / 1024


def idle_merge(data: Path, limit_s: float = IDLE_LIMIT_S) -> tuple[int, int, float, float, bool]:
    """A group committer left idle on the archive at `data` until its idle merge has
    nothing left to do; (bytes handed to write(), steps, CPU s, wall s, whether it
    ended), the checkpoint after it included. A merge the committer set aside (a step
    that failed: it waits for the next batch) or still due after `limit_s` did not end
    (review F3): the row counts such rounds."""
    archive = ba.open_archive(data)
    try:
        steps0 = archive._fts.steps
        committer = GroupCommitter(archive)
        io0, cpu0, t0 = ba.io_counters(), time.process_time(), time.perf_counter()
        committer.start()
        try:
            while (
                archive.fts_merge_due
                and not committer._merge_set_aside
                and time.perf_counter() - t0 < limit_s
            ):
                time.sleep(0.02)
        finally:
            committer.stop()
        ended = not archive.fts_merge_due
        archive.checkpoint()
        written = ba.io_counters().get("wchar", 0) - io0.get("wchar", 0)
        steps = archive._fts.steps - steps0
        return written, steps, time.process_time() - cpu0, time.perf_counter() - t0, ended
    finally:
        archive.close()


def _segments(data: Path) -> int:
    archive = ba.open_archive(data)
    try:
        return fts_merge.segment_count(archive.conn)
    finally:
        archive.close()


def long_run(
    work: Path,
    data: Path,
    base_records: int,
    rounds: int = ROUNDS,
    count: int = COUNT,
    search_rounds: int = 5,
    log: Callable[[str], None] = print,
    idle: bool = True,
) -> LongRun:
    """`rounds` rounds of `count` records into the archive at `data` (a scratch copy,
    written in place), each followed by an idle merge (unless not `idle`); then the
    segment count and search latency at the end."""
    run = LongRun(count)
    for n in range(rounds):
        # Each round past the last one's records: new ids, later times.
        grown = bg.growth_ingest(
            work, data, base_records + n * count, count, lambda _: None, in_place=True
        )
        ingested = _segments(data)
        merged = idle_merge(data) if idle else (0, 0, 0.0, 0.0, True)
        run.rounds.append(
            Round(
                round(grown.written_per_record * count),
                merged[0],
                merged[1],
                ingested,
                _segments(data) if idle else ingested,
                grown.cpu_us_per_record,
                merged[2],
                merged[3],
                merged[4],
            )
        )
        r = run.rounds[-1]
        log(
            f"  round {n + 1}/{rounds}: ingest {r.ingest_written / count / 1024:.2f} KiB/record,"
            f" idle merge {r.merge_written / count / 1024:.2f} ({r.steps} steps,"
            f" {r.merge_s:.1f} s), segments {r.segments_ingested} -> {r.segments_merged}"
            + ("" if r.merge_ended else "; THE MERGE DID NOT END (set aside or timed out)")
        )
    segments, run.p50_ms, run.p95_ms = bench_search_after._search(data, search_rounds, 60.0)
    run.segments = segments
    run.load = os.getloadavg()[0]
    return run


def figures(size: int, run: LongRun, cached_p95: float | None) -> list[ba.Figure]:
    """The long-run bytes per record (ingest + idle merges, amortised) and the search
    p95 after the last round's idle merge."""
    n = len(run.rounds)
    per_round = ", ".join(
        f"{(r.ingest_written + r.merge_written) / run.count / 1024:.1f}" for r in run.rounds
    )
    steps = sum(r.steps for r in run.rounds)
    unended = sum(not r.merge_ended for r in run.rounds)
    cut = (
        f"; IN {unended} ROUND(S) THE IDLE MERGE DID NOT END (a failed step set it aside,"
        f" or still due after {IDLE_LIMIT_S:.0f} s): the figure is short of its merges"
        if unended
        else ""
    )
    what = f"{n} rounds of {run.count:,} records into a copy of the {size:,}-record corpus"
    return [
        ba.Figure(
            f"bytes written per 1 KiB record over {n} rounds of ingest + idle merge,"
            f" {size:,}-record archive",
            run.kib_per_record(),
            "KiB",
            run.kib_per_record(merge=False),
            "the same rounds' ingest alone",
            "<= 10 KiB at 5,000,000 records (SD-card endurance)",
            f"{what} (merged once), each through the GroupCommitter as the growth rows,"
            f" then a group committer left idle until its idle merge had nothing due;"
            f" every byte SQLite handed to write() (wchar, checkpoints included) over all"
            f" {run.records:,} records; per round {per_round} KiB/record (lumpy: a level"
            f" is merged when it fills; a bigger level fills rarer than this window, its"
            f" merge bigger: docs/benchmarks.md, 40 rounds at 5M); idle merges"
            f" {run.kib_per_record(ingest=False):.2f} KiB/record in {steps} steps"
            f" ({sum(r.merge_cpu_s for r in run.rounds):.1f} s CPU); segments after each"
            f" round's merge {', '.join(str(r.segments_merged) for r in run.rounds)};"
            f" ingest CPU {statistics.median(r.ingest_cpu_us for r in run.rounds):.0f}"
            f" µs/record (median); load average {run.load:.1f}{cut}",
        ),
        ba.Figure(
            f"full-text search p95 over {size:,} messages after {n} rounds of"
            f" {run.count:,} new records, each with its idle merge",
            run.p95_ms,
            "ms",
            cached_p95,
            "the cached corpus, same run",
            "< 50 ms at 5M messages",
            f"{what}: {run.segments} FTS5 segments at the end; p50 {run.p50_ms:.1f} ms",
        ),
    ]


if __name__ == "__main__":  # a scratch copy's long run: DATA BASE_RECORDS [ROUNDS [COUNT]]
    args = sys.argv[1:]
    result = long_run(
        Path(args[0]).parent / "work",
        Path(args[0]),
        int(args[1]),
        int(args[2]) if len(args) > 2 else ROUNDS,
        int(args[3]) if len(args) > 3 else COUNT,
        log=lambda t: print(t, flush=True),
    )
    print(
        f"total {result.kib_per_record():.2f} KiB/record (ingest"
        f" {result.kib_per_record(merge=False):.2f}, idle merges"
        f" {result.kib_per_record(ingest=False):.2f}); {result.segments} segments;"
        f" search p50 {result.p50_ms:.1f} / p95 {result.p95_ms:.1f} ms;"
        f" load {result.load:.1f}"
    )
