"""Full-text search after an ingest, before and after the box's idle merge (schema 12).

The growth rows' ingest leaves one FTS5 segment per group commit, which FTS5 merges
only 16 at a time on the ack path: until the group committer's idle merge
(archive/fts_merge.py) has run, a search reads them all. The cached corpora do not
show it (their segments were merged as they were built), so these rows search the
growth section's scratch copy after its last round, before it is rolled back.

While the idle merge runs, sporadic pushes (one phone, PUSHES of them PUSH_GAP_S apart,
each waited for) go through the same GroupCommitter: a step under way when one is
queued gives way to it (rolled back; review M5). The bytes SQLite hands to write() from the
committer's start to the end of the merge (a checkpoint included, as the growth rows
do) are counted with the growth rows' counter, ba.io_counters()'s wchar (review W1).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_archive as ba
import bench_reads

from strongroom.archive import fts_merge, writes
from strongroom.archive import fts_merge as fts_merge_module
from strongroom.archive.committer import IDLE_BEFORE_FTS_MERGE_S, GroupCommitter
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive


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
    merge_written: int  # wchar from the committer's start to the merge's end + checkpoint
    push_ms: tuple[float, ...] = ()  # ack latency of each sporadic push
    pushes_on_merge: int = 0  # pushes submitted while the idle merge was still due
    push_written: int = 0  # of merge_written: the pushes' own commits (committer thread)
    yields: int = 0  # steps that gave way to a push (interrupted, rolled back)
    yield_ms_max: float = 0.0  # the longest a step ran before it gave way


PUSHES = 40
PUSH_GAP_S = 0.3


async def _sporadic_pushes(
    committer: GroupCommitter, archive: Archive, latencies: list[float]
) -> int:
    """PUSHES pushes from one phone, PUSH_GAP_S apart, each waited for (its ack) before
    the next; returns how many were submitted while the idle merge was due."""
    device, owner, key = ba.add_phones(archive, 1)[0]
    # Past any record a growth round made (base + 10M + count): new ids, later times.
    records = ba.make_records(key, 900_000_000, PUSHES, size=ba.MESSAGE_BYTES, seed=7)
    on_merge = 0
    for record in records:
        await asyncio.sleep(PUSH_GAP_S)
        on_merge += archive.fts_merge_due
        t0 = time.perf_counter()
        await committer.submit(writes.store_record(record, device, owner))
        latencies.append((time.perf_counter() - t0) * 1000)
    return on_merge


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
    yields: list[float] = []  # wall ms of each step that gave way to a push
    original = fts_merge_module.merge_step

    def timed(
        conn: Connection,
        pages: int = fts_merge.STEP_PAGES,
        yield_to: Callable[[], bool] | None = None,
        width: int | None = None,
    ) -> bool:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            merged = original(conn, pages, yield_to, width=width)
        except fts_merge.Yielded:  # gave way to a push: rolled back, tried again later
            yields.append((time.perf_counter() - wall) * 1000)
            raise
        steps.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))
        return merged

    archive = ba.open_archive(data)
    fts_merge_module.merge_step = timed  # type: ignore[assignment]  # this bench process only
    latencies: list[float] = []
    pushed = [0]  # bytes the committer thread handed to write() committing the pushes
    try:
        committer = GroupCommitter(archive)
        commit = committer._commit

        def counted(jobs: list[Any]) -> None:
            before = ba.io_counters(thread=True).get("wchar", 0)
            try:
                commit(jobs)
            finally:
                pushed[0] += ba.io_counters(thread=True).get("wchar", 0) - before

        committer._commit = counted  # type: ignore[method-assign]  # this instance only
        io0 = ba.io_counters()
        cpu0, t0 = time.process_time(), time.perf_counter()
        committer.start()
        on_merge = asyncio.run(_sporadic_pushes(committer, archive, latencies))
        while archive.fts_merge_due and time.perf_counter() - t0 < limit_s:
            time.sleep(0.05)
        committer.stop()
        idle_s = time.perf_counter() - t0 - IDLE_BEFORE_FTS_MERGE_S
        idle_cpu = time.process_time() - cpu0
        # What the merge left in the WAL reaches the database file inside the window,
        # as in the growth rows' (bench_growth.growth_ingest).
        archive.checkpoint()
        written = ba.io_counters().get("wchar", 0) - io0.get("wchar", 0)
    finally:
        fts_merge_module.merge_step = original  # type: ignore[assignment]
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
        written,
        tuple(latencies),
        on_merge,
        pushed[0],
        len(yields),
        max(yields, default=0.0),
    )


def figures(
    size: int, count: int, run: SearchAfter, cached_p95: float | None, growth_kib: float
) -> list[ba.Figure]:
    """Four rows: p95 straight after the ingest, and after the idle merge (the ceiling
    is the cached corpus's p95 of the same run, its segments as built); the idle
    merge's bytes written per record of the ingest (reference: the growth rows' figure
    at this size, `growth_kib` KiB/record); the sporadic pushes' ack latency."""
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
            f"a group committer left idle ({IDLE_BEFORE_FTS_MERGE_S} s, then steps of up"
            f" to {fts_merge.STEP_CALLS} 'merge' calls of {fts_merge.STEP_PAGES} pages, a"
            f" transaction each): {run.idle_steps} steps in"
            f" {run.idle_seconds:.1f} s ({len(run.push_ms)} sporadic pushes meanwhile, next"
            f" rows), {run.step_cpu_ms_median:.1f} ms CPU each (median),"
            f" longest {run.step_ms_max:.0f} ms wall; {run.yields} gave way to a push"
            f" (rolled back, tried again in a quiet spell: a push waits for no step);"
            f" {run.idle_cpu_seconds:.1f} s CPU in all (checkpoints included);"
            f" {run.segments} -> {run.merged_segments} segments; p50"
            f" {run.merged_p50_ms:.1f} ms",
        ),
        *_merge_figures(size, count, run, growth_kib),
    ]


def _merge_figures(size: int, count: int, run: SearchAfter, growth_kib: float) -> list[ba.Figure]:
    # The window's bytes less the pushes' own commits (their checkpointed pages stay in).
    merge_kib = (run.merge_written - run.push_written) / count / 1024
    pushes = len(run.push_ms)
    return [
        ba.Figure(
            f"bytes written per 1 KiB record by the idle merge, after {count:,} new records,"
            f" {size:,}-record archive",
            merge_kib,
            "KiB",
            growth_kib,
            "the ingest's own bytes written per record at this size (growth row, median)",
            "",
            f"bytes SQLite handed to write() (/proc/self/io wchar, the growth rows' counter)"
            f" from the idle committer's start to the merge's end and a checkpoint:"
            f" {run.merge_written / 2**20:.1f} MiB, less the {pushes} sporadic pushes' own"
            f" commits ({run.push_written / 2**20:.2f} MiB, the committer thread's wchar), over"
            f" the {count:,} records the ingest left (the cached corpus's own pending merge"
            f" was finished once when it was cached: its own row); ingest + idle merge ="
            f" {growth_kib + merge_kib:.2f} KiB/record; {run.idle_steps} merge steps",
        ),
        ba.Figure(
            f"ack latency p99 of sporadic pushes during the idle merge, {size:,}-record archive",
            ba.percentile(run.push_ms, 99),
            "ms",
            aim="< 50 ms p99",
            note=f"{pushes} pushes from one phone {PUSH_GAP_S} s apart, each waited for,"
            f" through the GroupCommitter (idle merge starts after"
            f" {IDLE_BEFORE_FTS_MERGE_S} s without work); {run.pushes_on_merge} of them"
            f" submitted while the merge was due; p50 {ba.percentile(run.push_ms, 50):.1f}"
            f" ms, max {max(run.push_ms, default=float('nan')):.1f} ms; longest merge step"
            f" {run.step_ms_max:.0f} ms, {run.yields} steps gave way to a push (after up to"
            f" {run.yield_ms_max:.0f} ms); load average {run.load:.1f}",
        ),
    ]
