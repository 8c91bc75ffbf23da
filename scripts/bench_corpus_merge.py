"""The cached corpus's pending full-text merge, finished once (review L3; split out of
bench_corpus.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import bench_archive as ba
import bench_corpus as bc

from strongroom.archive import fts_merge

# Written once the corpus's pending full-text merge is finished.
FTS_MERGED = "fts-merged"
# Pages of merged output per step of that one-off merge (the box's idle merge: 32).
_FINISH_STEP_PAGES = 4096


def finish_fts_merge(path: Path, log: Callable[[str], None] = print) -> None:
    """The cached corpus's pending full-text merge, finished once, in place (review L3).

    A build leaves levels of the FTS5 index at `usermerge` segments, as a box's ingest
    would until its group committer is idle; a box merges them in its first quiet
    spell, once. Left in the cache, every copy of the corpus would merge them again and
    the idle merge's bytes row would report that one-off (~56 KiB/record at 5M) instead
    of what a box sees after an ingest. Finished here with the box's own 'merge' command
    in bigger steps, under the box's WAL (review L5): the corpus is already `complete`,
    so unlike a build it must never be torn; each step commits whole, and a merge that is
    killed half-way resumes at the next run. The file is synced before its marker; its
    cost is kept in build.json (`fts_merge_*`) and reported on a line of its own
    (bench_growth_rounds)."""
    marker = path / FTS_MERGED
    if marker.exists():
        return
    io0, cpu0, t0 = ba.io_counters(), time.process_time(), time.perf_counter()
    archive = ba.open_archive(path / "data")
    steps = 0
    try:
        conn = archive.conn
        segments = fts_merge.segment_count(conn)
        width = fts_merge.usermerge(conn)
        # The build's page cache, not its journal: no `journal_mode = MEMORY` nor
        # `synchronous = OFF` on a corpus that is already marked complete.
        conn.execute(f"PRAGMA cache_size = -{bc._BUILD_CACHE_KIB}")
        while fts_merge.merge_pending(conn, width):
            steps += 1
            if not fts_merge.merge_step(conn, _FINISH_STEP_PAGES, calls=1):
                break
        merged = fts_merge.segment_count(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        archive.close()
    # A run that resumes a killed merge adds to the figures already kept, and keeps the
    # first run's segment count (review F4): the one-off's row reports all of it.
    info = bc.build_info(path)
    info["fts_segments_before"] = info.get("fts_segments_before", segments)
    info["fts_segments_after"] = merged
    for key, spent in (
        ("fts_merge_seconds", time.perf_counter() - t0),
        ("fts_merge_cpu_seconds", time.process_time() - cpu0),
        ("fts_merge_written_bytes", ba.io_counters().get("wchar", 0) - io0.get("wchar", 0)),
        ("fts_merge_steps", steps),
    ):
        info[key] = info.get(key, 0) + spent
    partial = path / "build.json.partial"  # replaced whole: never a torn build.json
    partial.write_text(json.dumps(info) + "\n")
    os.replace(partial, path / "build.json")
    data = sorted((path / "data").glob("archive.db*"))
    bc._mark_complete(marker, f"{segments} -> {merged}\n", [*data, path / "build.json"])
    log(
        f"  finished the cached corpus's pending full-text merge once:"
        f" {info['fts_segments_before']:.0f} -> {merged}"
        f" segments, {info['fts_merge_written_bytes'] / 2**20:.0f} MiB written,"
        f" {info['fts_merge_seconds']:.1f} s"
    )


def merge_figure(corpus: Path, size: int) -> ba.Figure | None:
    """The one-off merge's own line (its bytes are not the idle merge's: that row now
    starts from a merged corpus, as a box after its first quiet spell)."""
    info = bc.build_info(corpus)
    if "fts_merge_written_bytes" not in info:
        return None
    return ba.Figure(
        f"the cached {size:,}-message corpus's one-off full-text merge, bytes written",
        info["fts_merge_written_bytes"] / 2**20,
        "MiB",
        note=f"once per cached corpus (not each run), in place: what a box's first quiet"
        f" spell after such an ingest would merge; {info['fts_segments_before']:.0f} ->"
        f" {info['fts_segments_after']:.0f} FTS5 segments in {info['fts_merge_steps']:.0f}"
        f" steps of {_FINISH_STEP_PAGES} pages, {info['fts_merge_seconds']:.1f} s"
        f" ({info['fts_merge_cpu_seconds']:.1f} s CPU); bytes handed to write() (wchar),"
        f" {info['fts_merge_written_bytes'] / size / 1024:.1f} KiB per corpus record",
    )
