"""The growth ingest with the WAL checkpoint on the commit path (before review M2) and
on the background checkpointer (now): ack p99/max, longest group commit, bytes per record.

    .venv/bin/python scripts/measure_checkpoint_path.py [COUNT] [SIZES...]
    # default: 40,000 records into an empty archive and into a copy of the 1M corpus

Runs bench_growth.growth_ingest (ten phones through the GroupCommitter) twice per
mode and size, alternating. "commit path" is the previous behaviour: the
background checkpointer does nothing and the writer checkpoints itself at
db.WAL_AUTOCHECKPOINT_PAGES. The 1M corpus is copied once from the lead's cache
(/work/wt/merge/var/bench, only read) into var/bench/checkpoint-1000000/.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(REPO / "app"))

import bench_archive as ba  # noqa: E402
import bench_growth as bg  # noqa: E402

from strongroom.archive import checkpointer as ckpt  # noqa: E402
from strongroom.archive import committer as committer_mod  # noqa: E402
from strongroom.archive import db  # noqa: E402
from strongroom.archive.store import Archive, BatchResult, WriteOp  # noqa: E402

SHARED = Path("/work/wt/merge/var/bench")
WORK = REPO / "var" / "bench"


class Probe:
    """Ack latencies (from the harness's own list) and each write_batch's duration."""

    def __init__(self) -> None:
        self.latencies: list[list[float]] = []
        self.batches: list[float] = []
        # Group commits during which the WAL was copied into archive.db: on the commit
        # path they ran the checkpoint; in the background they ran beside it.
        self.copying: list[float] = []
        self.checkpointers: list[ckpt.Checkpointer] = []

    def install(self, commit_path: bool) -> Callable[[], None]:
        real_produce = ba._produce
        real_write = Archive.write_batch
        real_bound = committer_mod.bound_pages
        real_run_once = ckpt.Checkpointer.run_once
        real_start = ckpt.Checkpointer.start
        probe = self

        async def produce(*args: Any) -> None:
            probe.latencies.append(args[5])  # the list growth_ingest collects into
            await real_produce(*args)

        def write_batch(
            self: Archive, ops: Sequence[WriteOp], *, sign: bool = True, fold: bool = True
        ) -> BatchResult:
            before = self.wal_index.state()
            t0 = time.perf_counter()
            try:
                return real_write(self, ops, sign=sign, fold=fold)
            finally:
                elapsed = time.perf_counter() - t0
                probe.batches.append(elapsed)
                after = self.wal_index.state()
                if before and after and after.backfilled > before.backfilled:
                    probe.copying.append(elapsed)

        def start(self: ckpt.Checkpointer) -> None:
            probe.checkpointers.append(self)
            real_start(self)

        ba._produce = produce  # type: ignore[assignment]
        Archive.write_batch = write_batch  # type: ignore[method-assign]
        ckpt.Checkpointer.start = start  # type: ignore[method-assign]
        if commit_path:
            committer_mod.bound_pages = lambda: db.WAL_AUTOCHECKPOINT_PAGES
            ckpt.Checkpointer.run_once = lambda self: False  # type: ignore[method-assign]

        def undo() -> None:
            ba._produce = real_produce
            Archive.write_batch = real_write  # type: ignore[method-assign]
            committer_mod.bound_pages = real_bound
            ckpt.Checkpointer.run_once = real_run_once  # type: ignore[method-assign]
            ckpt.Checkpointer.start = real_start  # type: ignore[method-assign]

        return undo


def corpus_copy(size: int) -> Path:
    if size == 0:
        raise ValueError("no corpus for an empty archive")
    own = WORK / f"checkpoint-{size}" / "data"
    if (own / "archive.db").exists():
        return own
    source = SHARED / f"archive-{size}-v{db.SCHEMA_VERSION}" / "data"
    if not (source.parent / "complete").exists():
        raise SystemExit(f"no complete corpus at {source.parent}")
    own.mkdir(parents=True)
    for name in ("archive.db", "keystore.json", "tree_head.latest"):
        if (source / name).exists():
            shutil.copy2(source / name, own / name)
    return own


def one(size: int, count: int, commit_path: bool) -> str:
    probe = Probe()
    undo = probe.install(commit_path)
    try:
        base = corpus_copy(size) if size else None
        run = bg.growth_ingest(WORK / "checkpoint-run", base, size, count, log=lambda _: None)
    finally:
        undo()
    acks = [x for lat in probe.latencies for x in lat]
    background = probe.checkpointers
    ckpts = sum(c.checkpoints for c in background)
    longest_ckpt = max((c.longest_s for c in background), default=0.0)
    longest_tail = max((c.longest_tail_s for c in background), default=0.0)
    copying = max(probe.copying, default=float("nan")) * 1000
    median = ba.percentile(probe.batches, 50) * 1000
    mode = "commit path " if commit_path else "background  "
    return (
        f"{size:>9,} {mode} {run.msgs_per_s:7.0f} msg/s  ack p99 {ba.percentile(acks, 99):7.1f} ms"
        f"  ack max {max(acks):7.1f} ms  longest group commit {max(probe.batches) * 1000:7.1f} ms"
        f"  written/record {run.written_per_record / 1024:5.2f} KiB"
        f"  (disk {run.disk_written_per_record / 1024:5.2f} KiB)"
        f"  commits during a copy: {len(probe.copying)}, longest {copying:.1f} ms"
        f" (median commit {median:.1f} ms)"
        f"  background checkpoints {ckpts} (longest {longest_ckpt * 1000:.0f} ms,"
        f" longest held tail {longest_tail * 1000:.0f} ms)"
        f"  load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    sizes = [int(s) for s in sys.argv[2:]] or [0, 1_000_000]
    for attempt in (1, 2):
        for size in sizes:
            for commit_path in (True, False):
                print(f"run {attempt} " + one(size, count, commit_path), flush=True)


if __name__ == "__main__":
    main()
