"""Why /proc/self/io write_bytes is not "bytes sent to the disk" (docs/benchmarks.md notes).

    PYTHONPATH=app .venv/bin/python scripts/measure_write_bytes.py folio DIR
        4 KiB pwrites at random offsets of a file written in 4 MiB, then 4 KiB, blocks.
    PYTHONPATH=app .venv/bin/python scripts/measure_write_bytes.py ingest DATA MODE [nofold]
        bench_growth.growth_ingest of 20,000 records into a scratch copy of DATA (a
        1M corpus data dir); MODE rollback (the growth rows' way, a scratch copy kept
        in var/kio-work and rolled back to DATA), evict (the same, the scratch file's
        page cache dropped before the window) or copy (a fresh copytree).

Each prints per record: wchar (handed to write()), write_bytes, cancelled_write_bytes
and the block device's sectors written (whole device, every process).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import bench_archive as ba
import bench_growth as bg
import bench_growth_rounds as bgr

from strongroom.archive import conv_keys


def _window(path: Path) -> dict[str, int]:
    counters = ba.io_counters()
    counters["device"] = ba.device_written_bytes(path) or 0
    return counters


def _show(what: str, before: dict[str, int], after: dict[str, int], per: int, unit: str) -> None:
    fields = ("wchar", "write_bytes", "cancelled_write_bytes", "device")
    figures = ", ".join(f"{f} {(after[f] - before[f]) / per / 1024:.2f}" for f in fields)
    print(f"{what}: {figures} KiB per {unit}; load {os.getloadavg()[0]:.2f}", flush=True)


def folio(directory: Path, writes: int = 2000, size: int = 256 << 20) -> None:
    path = directory / "write-bytes-probe"
    for block in (4 << 20, 4096):
        with path.open("wb") as out:
            chunk = os.urandom(block)
            for _ in range(size // block):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.sync()
        offsets = random.Random(1).sample(range(size // 4096), writes)
        fd = os.open(path, os.O_RDWR)
        try:
            before = _window(directory)
            for page in offsets:
                os.pwrite(fd, b"x" * 4096, page * 4096)
            os.fsync(fd)
            after = _window(directory)
        finally:
            os.close(fd)
        _show(f"file written in {block // 1024} KiB blocks", before, after, writes, "4 KiB pwrite")
    path.unlink()


def ingest(base: Path, mode: str, fold: bool, count: int = 20_000) -> None:
    if not fold:
        conv_keys.FOLD_AT = 10**12
    work = Path("var/kio-work")
    work.mkdir(parents=True, exist_ok=True)
    seen: list[dict[str, int]] = []
    counters = ba.io_counters

    def spy() -> dict[str, int]:  # growth_ingest's own window, with the device beside it
        got = counters()
        got["device"] = ba.device_written_bytes(work) or 0
        seen.append(got)
        return got

    ba.io_counters = spy  # type: ignore[assignment]  # this process only
    if mode == "copy":
        run = bg.growth_ingest(work, base, 1_000_000, count)
    else:
        scratch = work / "scratch" / "data"
        if scratch.exists():
            print(f"rolled back {bgr.rollback(base, scratch) / 2**20:.0f} MiB", flush=True)
        else:
            shutil.copytree(base, scratch)
        os.sync()
        if mode == "evict":
            for path in scratch.glob("archive.db*"):
                fd = os.open(path, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
        run = bg.growth_ingest(work, scratch, 1_000_000, count, in_place=True)
    what = f"{mode}, {'fold' if fold else 'no fold'}, {run.folds} fold(s), {run.msgs_per_s:,.0f}/s"
    _show(what, seen[-2], seen[-1], count, "record")


if __name__ == "__main__":
    if sys.argv[1] == "folio":
        folio(Path(sys.argv[2]))
    else:
        ingest(Path(sys.argv[2]), sys.argv[3], sys.argv[4:] != ["nofold"])
