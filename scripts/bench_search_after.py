"""Full-text search after an ingest, before and after the box's idle merge (schema 12).

The growth rows' ingest leaves one FTS5 segment per group commit, which FTS5 merges
only 16 at a time on the ack path: until the group committer's idle merge
(archive/fts_merge.py) has run, a search reads them all. The cached corpora do not
show it (their segments were merged as they were built), so these rows search the
growth section's scratch copy after its last round, before it is rolled back.
"""

from __future__ import annotations

import os
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import bench_archive as ba
import bench_reads

from strongroom.archive import fts_merge
from strongroom.archive import store as store_module
from strongroom.archive.committer import IDLE_BEFORE_FTS_MERGE_S, GroupCommitter
from strongroom.archive.db import Connection


@dataclass(frozen=True)
class SearchAfter:
    segments: int  # straight after the ingest
    p50_ms: float
    p95_ms: float
    idle_seconds: float  # until the idle merge had nothing left to do
    idle_steps: int
    step_ms_max: float  # the longest step: what a push arriving mid-step waits at worst
    step_cpu_ms_median: float  # the committer thread's CPU per step
    idle_cpu_seconds: float  # the whole process (the checkpointer's share included)
    merged_segments: int
    merged_p50_ms: float
    merged_p95_ms: float
    load: float


def _search(data: Path, rounds: int, budget_s: float) -> tuple[int, float, float]:
    archive = ba.open_archive(data)
    try:
        with closing(archive.reader()) as reader:
            samples = bench_reads._time_queries(reader, rounds, budget_s)
        return (
            fts_merge.segment_count(archive.conn),
            ba.percentile(samples, 50),
            ba.percentile(samples, 95),
        )
    finally:
        archive.close()


def search_after(
    data: Path, rounds: int, budget_s: float = 60.0, limit_s: float = 900.0
) -> SearchAfter:
    """Search the archive at `data` as an ingest left it, then let a group committer
    with nothing to commit merge the index (its idle merge), then search again."""
    segments, p50, p95 = _search(data, rounds, budget_s)
    steps: list[tuple[float, float]] = []  # (wall ms, thread CPU ms)
    original = store_module.merge_step

    def timed(conn: Connection, pages: int = fts_merge.STEP_PAGES) -> bool:
        wall, cpu = time.perf_counter(), time.thread_time()
        merged = original(conn, pages)
        steps.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))
        return merged

    archive = ba.open_archive(data)
    store_module.merge_step = timed  # type: ignore[assignment]  # this bench process only
    try:
        committer = GroupCommitter(archive)
        cpu0, t0 = time.process_time(), time.perf_counter()
        committer.start()
        while archive.fts_merge_due and time.perf_counter() - t0 < limit_s:
            time.sleep(0.05)
        committer.stop()
        idle_s = time.perf_counter() - t0 - IDLE_BEFORE_FTS_MERGE_S
        idle_cpu = time.process_time() - cpu0
    finally:
        store_module.merge_step = original  # type: ignore[assignment]
        archive.close()
    merged_segments, merged_p50, merged_p95 = _search(data, rounds, budget_s)
    return SearchAfter(
        segments,
        p50,
        p95,
        idle_s,
        len(steps),
        max((w for w, _ in steps), default=0.0),
        ba.percentile([c for _, c in steps], 50),
        idle_cpu,
        merged_segments,
        merged_p50,
        merged_p95,
        os.getloadavg()[0],
    )


def figures(size: int, count: int, run: SearchAfter, cached_p95: float | None) -> list[ba.Figure]:
    """Two rows: p95 straight after the ingest, and after the idle merge; the ceiling
    is the cached corpus's p95 of the same run (its segments as built)."""
    what = "the cached corpus, same run"
    after = f"full-text search p95 over {size:,} messages after {count:,} new records"
    return [
        ba.Figure(
            f"{after}, no idle time",
            run.p95_ms,
            "ms",
            cached_p95,
            what,
            "< 50 ms at 5M messages",
            f"the growth rows' last round at this size, before its rollback: {run.segments}"
            f" FTS5 segments (16 merged at a time on the ack path); p50 {run.p50_ms:.1f} ms;"
            f" load average {run.load:.1f}",
        ),
        ba.Figure(
            f"{after} and the idle merge",
            run.merged_p95_ms,
            "ms",
            cached_p95,
            what,
            "< 50 ms at 5M messages",
            f"a group committer left idle ({IDLE_BEFORE_FTS_MERGE_S} s, then"
            f" {fts_merge.STEP_PAGES}-page 'merge' steps): {run.idle_steps} steps in"
            f" {run.idle_seconds:.1f} s, {run.step_cpu_ms_median:.1f} ms CPU each (median),"
            f" longest {run.step_ms_max:.0f} ms wall (a push waits at most one step);"
            f" {run.idle_cpu_seconds:.1f} s CPU in all (checkpoints included);"
            f" {run.segments} -> {run.merged_segments} segments; p50"
            f" {run.merged_p50_ms:.1f} ms",
        ),
    ]
