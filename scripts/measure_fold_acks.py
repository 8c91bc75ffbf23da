"""Ack latency around the conversation index's folds (review L7): ten phones push
through the GroupCommitter into a copy of a cached corpus, at a paced rate and
saturated; every ack is timed, every fold (conv_keys.fold) too. Reports, per run:
all acks' p50/p99/max, the acks whose push was in flight while a fold (or a fold
step) ran, and their durations.

    .venv/bin/python scripts/measure_fold_acks.py DATA [COUNT] [RATE]
    # DATA: a scratch copy of a corpus's data dir (written into: roll it back between runs)
    # FOLD_APP=/tmp/old/app selects another checkout's app/ (the code before a change)

The copy must be the caller's own (never the lead's cache under /work/wt/merge).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, os.environ.get("FOLD_APP", str(REPO / "app")))

import bench_archive as ba  # noqa: E402
import bench_growth as bg  # noqa: E402

from strongroom.archive import conv_keys  # noqa: E402
from strongroom.archive.committer import GroupCommitter  # noqa: E402


def _watch(windows: list[tuple[float, float]]) -> None:
    """Time every fold (before the steps: conv_keys.fold) and every fold step."""
    for name in ("fold", "fold_step"):
        real = getattr(conv_keys, name, None)
        if real is not None:
            setattr(conv_keys, name, _timed(real, windows))


def _timed(real: Any, windows: list[tuple[float, float]]) -> Any:
    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real(*args)
        finally:
            windows.append((t0, time.perf_counter()))

    return timed


def run(data: Path, count: int, rate: float | None, first: int) -> str:
    archive = ba.open_archive(data)
    committer = GroupCommitter(archive)
    windows: list[tuple[float, float]] = []
    acks: list[tuple[float, float]] = []
    try:
        phones = ba.add_phones(archive, bg.PRODUCERS)
        per_phone = count // bg.PRODUCERS
        records = [
            ba.make_records(key, first + i * per_phone, per_phone, size=1024, seed=300 + i)
            for i, (_, _, key) in enumerate(phones)
        ]
        # Start right under the fold threshold: every run sees folds at the same points.
        committer.start()
        _watch(windows)
        phone_rate = None if rate is None else rate / bg.PRODUCERS

        async def go() -> None:
            await asyncio.gather(
                *(
                    ba._produce(committer, recs, device, owner, bg.WINDOW, [], phone_rate, acks)
                    for recs, (device, owner, _) in zip(records, phones, strict=True)
                )
            )

        t0 = time.perf_counter()
        asyncio.run(go())
        elapsed = time.perf_counter() - t0
    finally:
        committer.stop()
        archive.close()
    ms = sorted((b - a) * 1000 for a, b in acks)
    near = sorted((b - a) * 1000 for a, b in acks if any(a <= fe and b >= fs for fs, fe in windows))
    folds = [(fe - fs) * 1000 for fs, fe in windows]
    return (
        f"{'saturated' if rate is None else f'{rate:.0f}/s'}: {len(acks) / elapsed:,.0f} msgs/s;"
        f" acks p50 {ba.percentile(ms, 50):.1f} p99 {ba.percentile(ms, 99):.1f}"
        f" max {ms[-1]:.1f} ms; {len(near)} acks in flight during a fold:"
        f" p99 {ba.percentile(near, 99) if near else 0:.1f} max {near[-1] if near else 0:.1f} ms;"
        f" folds {len(folds)}: {', '.join(f'{f:.0f}' for f in folds)} ms;"
        f" load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    data = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 40_000
    rate = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] != "max" else None
    print(run(data, count, rate, 50_000_000 + int(time.time()) % 1_000_000 * 100), flush=True)


if __name__ == "__main__":
    main()
