"""Growth rows of `make bench` (issue #20): ingest at an empty, a 1M and a 5M archive,
measured in interleaved rounds (empty, 1M, 5M, empty, 1M, 5M, ...).

One 20,000-record run per size moved the 5M/empty ratio between 0.59 and 0.81 from
run to run: the machine is shared, and the empty rate alone moved 8.8k-10.3k msgs/s.
Each round measures every size back to back, so a round's ratio compares runs made
under the same load; the row reports the median of the rounds' ratios and their spread.

Every round writes into a scratch copy made once per size; between rounds the copy
is rolled back to the cached corpus byte for byte (only the blocks the ingest changed
are written back), so every round ingests into an archive of exactly the stated size
without paying for a fresh multi-GB copy each time.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import bench_archive as ba
import bench_corpus_merge
import bench_fts_longrun
import bench_growth as bg
import bench_peer
import bench_search_after

BLOCK = 4 * 1024 * 1024
BIG_FILE = 64 * 1024 * 1024  # smaller files are simply copied again


def rollback(base: Path, data: Path) -> int:
    """Make the directory `data` byte-identical to `base` again; return bytes rewritten.

    A big file is compared block by block and only differing blocks are written back
    (then truncated to the base's length: an ingest grows it); everything else is
    copied, and files `base` does not have (a WAL, a shm) are removed."""
    rewritten = 0
    wanted = {p.relative_to(base) for p in base.rglob("*")}
    for path in sorted(data.rglob("*"), reverse=True):  # children before their dirs
        if path.relative_to(data) not in wanted:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    for rel in sorted(wanted):
        src, dst = base / rel, data / rel
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif dst.is_file() and src.stat().st_size >= BIG_FILE:
            rewritten += _restore_blocks(src, dst)
        else:
            shutil.copy2(src, dst)
            rewritten += src.stat().st_size
    return rewritten


def _restore_blocks(src: Path, dst: Path) -> int:
    rewritten = 0
    with src.open("rb") as fin, dst.open("r+b") as fout:
        offset = 0
        while block := fin.read(BLOCK):
            fout.seek(offset)
            if fout.read(len(block)) != block:
                fout.seek(offset)
                fout.write(block)
                rewritten += len(block)
            offset += len(block)
        fout.truncate(offset)
        fout.flush()
        os.fsync(fout.fileno())
    return rewritten


def _fresh(work: Path, data: Path | None, base_records: int, count: int) -> bg.GrowthRun:
    # Each run in a fresh process: its RSS is then the archive's, not that of this
    # process after it built the corpora (bench_peer's helper, as for the box figures).
    child = bench_peer.start_in_fresh_process(
        bg.growth_ingest, work, data, base_records, count, in_place=True
    )
    run: bg.GrowthRun = bench_peer.wait_for_child(child, "the growth ingest")
    return run


def interleaved(
    work: Path,
    bases: dict[int, Path],
    count: int,
    rounds: int,
    log: Callable[[str], None],
    after_last: Callable[[int, Path], None] | None = None,
) -> dict[int, list[bg.GrowthRun]]:
    """`rounds` rounds of: an empty archive, then each size in `bases` (a corpus data
    dir each). Returns the runs by size (0 = empty), one per round, in round order.
    after_last(size, data): called with each size's scratch copy as the last round's
    ingest left it, before it is deleted."""
    runs: dict[int, list[bg.GrowthRun]] = {0: [], **{size: [] for size in bases}}
    scratch = {size: work / f"growth-{size}" / "data" for size in bases}
    try:
        for size, base in bases.items():
            log(f"  copying the {size:,}-record archive")
            shutil.rmtree(scratch[size].parent, ignore_errors=True)
            shutil.copytree(base, scratch[size])
        os.sync()  # the copies' own writeback must not count as an ingest's
        for n in range(rounds):
            runs[0].append(_fresh(work, None, 0, count))
            for size, base in bases.items():
                if n:
                    t0 = time.perf_counter()
                    moved = rollback(base, scratch[size])
                    log(
                        f"  rolled the {size:,}-record copy back: {moved / 2**20:.0f} MiB"
                        f" rewritten in {time.perf_counter() - t0:.1f} s"
                    )
                runs[size].append(_fresh(work, scratch[size], size, count))
            log(
                f"  round {n + 1}/{rounds}: "
                + ", ".join(f"{s:,}: {r[-1].msgs_per_s:,.0f} msgs/s" for s, r in runs.items())
            )
        for size in bases:
            if after_last is not None:
                after_last(size, scratch[size])
    finally:
        for path in scratch.values():
            shutil.rmtree(path.parent, ignore_errors=True)
    return runs


def ratios(runs: list[bg.GrowthRun], empty: list[bg.GrowthRun]) -> list[float]:
    """Each round's rate over the same round's empty-archive rate."""
    return [r.msgs_per_s / e.msgs_per_s for r, e in zip(runs, empty, strict=True)]


def cpu_ratios(runs: list[bg.GrowthRun], empty: list[bg.GrowthRun]) -> list[float]:
    """Each round's CPU per record over the same round's at an empty archive (>1: dearer)."""
    return [r.cpu_us_per_record / e.cpu_us_per_record for r, e in zip(runs, empty, strict=True)]


def _median(runs: list[bg.GrowthRun], field: str) -> float:
    return statistics.median(float(getattr(r, field)) for r in runs)


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else "one round"


def growth_figures(
    work: Path,
    sizes: tuple[int, ...],
    count: int,
    log: Callable[[str], None],
    search_at: tuple[int, ...] = (),
    search_rounds: int = 5,
    rounds: int = 3,
    long_run: tuple[int, int] = (bench_fts_longrun.ROUNDS, bench_fts_longrun.COUNT),
) -> list[ba.Figure]:
    """Ingest, writes, disk and memory at each corpus size against an empty archive
    (medians of `rounds` interleaved rounds); the corpus build and full-text search at
    the sizes in `search_at`; at the largest of them, the long run of `long_run`
    (rounds, records each) of ingest + idle merge (bench_fts_longrun)."""
    corpora: dict[int, Path] = {}
    built: list[ba.Figure] = []
    one_off: dict[int, list[ba.Figure]] = {}  # the corpus's pending FTS merge, once
    for size in sizes:
        t0 = time.perf_counter()
        corpora[size] = ba.cached_archive(work, size, log=log)
        built.append(bg._build_figure(corpora[size], size, time.perf_counter() - t0))
        if (merged := bench_corpus_merge.merge_figure(corpora[size], size)) is not None:
            one_off[size] = [merged]
    searched_after: dict[int, bench_search_after.SearchAfter] = {}
    long_runs: dict[int, bench_fts_longrun.LongRun] = {}

    def search_after(size: int, data: Path) -> None:
        if size == max(search_at, default=None):
            log(f"  searching the {size:,}-record copy after the ingest, then idle")
            searched_after[size] = bench_search_after.search_after(data, search_rounds)
            log(f"  the long run: {long_run[0]} x {long_run[1]:,} records + idle merges")
            rollback(bases[size], data)  # from the cached corpus again
            child = bench_peer.start_in_fresh_process(
                bench_fts_longrun.long_run, work, data, size, *long_run, search_rounds, bg._stderr
            )
            long_runs[size] = bench_peer.wait_for_child(child, "the long run")

    bases = {s: c / "data" for s, c in corpora.items()}
    runs = interleaved(work, bases, count, rounds, log, search_after)
    empty = runs[0]
    empty_rate = _median(empty, "msgs_per_s")
    empty_cpu = _median(empty, "cpu_us_per_record")
    empty_written = _median(empty, "written_per_record")
    who = (
        f"{count:,} x 1 KiB through the GroupCommitter, {bg.PRODUCERS} phones x {bg.WINDOW}"
        f" in flight; median of {rounds} interleaved rounds"
    )
    rates = ", ".join(f"{r.msgs_per_s:,.0f}" for r in empty)
    figures = [
        ba.Figure(
            "ingest into an empty archive (growth reference)",
            empty_rate,
            "msgs/s",
            note=f"{who} (rounds: {rates}); CPU {empty_cpu:.0f} µs/record (all threads)",
        ),
        ba.Figure(
            "bytes written per 1 KiB record, empty archive",
            empty_written / 1024,
            "KiB",
            note=bg._written_note(empty[0]),
        ),
    ]
    for size, build in zip(sizes, built, strict=True):
        at = f"{size:,}-record archive"
        mine = runs[size]
        per_round = ratios(mine, empty)
        figures += [
            build,
            *one_off.get(size, []),
            ba.Figure(
                f"ingest into a {at}",
                _median(mine, "msgs_per_s"),
                "msgs/s",
                empty_rate,
                "ingest into an empty archive, same rounds (ratio: median of the rounds')",
                ">= 0.8 of empty at 5,000,000 records",
                f"{who}; ratio per round {', '.join(f'{q:.2f}' for q in per_round)}"
                f" (spread {_spread(per_round)}); CPU {_median(mine, 'cpu_us_per_record'):.0f}"
                f" µs/record (empty: {empty_cpu:.0f}); rolled back to {size:,} between rounds",
                statistics.median(per_round),
            ),
            ba.Figure(
                f"CPU per record, ingest into a {at}",
                _median(mine, "cpu_us_per_record"),
                "µs",
                empty_cpu,
                "the same at an empty archive, same rounds (ratio: median of the rounds')",
                note="the bench process, all threads (committer + producers); steadier than"
                " the rate on a shared machine: per round "
                + ", ".join(f"{q:.2f}" for q in cpu_ratios(mine, empty))
                + f" (spread {_spread(cpu_ratios(mine, empty))})",
                median_ratio=statistics.median(cpu_ratios(mine, empty)),
            ),
            ba.Figure(
                f"bytes written per 1 KiB record, {at}",
                _median(mine, "written_per_record") / 1024,
                "KiB",
                empty_written / 1024,
                "the same at an empty archive",
                "<= 10 KiB at 5,000,000 records (SD-card endurance)",
                bg._written_note(mine[0]) + f"; median of {rounds} rounds",
            ),
            ba.Figure(
                f"bytes on disk per record, {at}",
                bg.disk_bytes(corpora[size] / "data") / size / 1024,
                "KiB",
                note="archive.db + WAL / records; 1 KiB text, signed CBOR, log, FTS",
            ),
            ba.Figure(
                f"bench process RSS idle, {at} open",
                _median(mine, "idle_rss_mib"),
                "MiB",
                aim="box idle < 60 MiB",
                note="fresh process: archive open, phones paired, nothing else",
            ),
            ba.Figure(
                f"bench process peak RSS, ingest into {at}",
                max(r.peak_rss_mib for r in mine),
                "MiB",
                aim="box under load < 150 MiB",
                note="harness included: its pre-signed records (~1.5 KiB each); worst round",
            ),
            ba.Figure(
                f"box's share of peak RSS, ingest into {at}",
                max(r.box_peak_rss_mib for r in mine),
                "MiB",
                aim="box under load < 150 MiB",
                note=f"idle {mine[0].idle_rss_mib:.0f} MiB + what the ingest added over the"
                f" harness holding its {count:,} pre-signed records"
                f" ({mine[0].loaded_rss_mib:.0f} MiB); worst round",
            ),
        ]
        if size in search_at:
            searched = bg._search_figures(corpora[size], size, search_rounds)
            figures += searched
            if size in searched_after:
                cached_p95 = searched[-1].value
                figures += bench_search_after.figures(
                    size,
                    count,
                    searched_after[size],
                    cached_p95,
                    _median(mine, "written_per_record") / 1024,
                )
            if size in long_runs:
                figures += bench_fts_longrun.figures(size, long_runs[size], searched[-1].value)
    return figures
