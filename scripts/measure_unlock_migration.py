"""Unlocking a cached corpus one schema behind: how long the event loop stalls.

    .venv/bin/python scripts/measure_unlock_migration.py [SIZE]   # default 1,000,000

Review L3: the unlock ran the schema migration on the event loop. This copies
the cached corpus's archive (var/bench/archive-<SIZE>-v<schema>, the lead's
copy under /work/wt/merge/var/bench is only read) into var/bench/migrate-<SIZE>/,
takes migration 9 back out of the copy (its index and column; the index build
is the step that costs time), then opens it twice each way, alternating: on
the loop as before (`Box.open_with`) and in a worker thread
(`Box.open_off_loop`), while a task on the loop measures its own lateness
(5 ms sleeps). Prints one line per run and `uptime`. Not a bench.py row: it
needs the previous schema, which only exists for migration 9's shape.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
sys.path.insert(0, str(REPO / "app"))

import bench_archive as ba  # noqa: E402

from strongroom.archive import db  # noqa: E402
from strongroom.archive.schema import SCHEMA_VERSION  # noqa: E402
from strongroom.box import Box  # noqa: E402
from strongroom.config import BoxConfig  # noqa: E402

SHARED = Path("/work/wt/merge/var/bench")
TICK_S = 0.005


def previous_schema_copy(size: int) -> Path:
    """A copy of the corpus's archive.db at schema 8 (migration 9 taken out)."""
    if SCHEMA_VERSION != 9:
        raise SystemExit(f"written for migration 9; this tree is at {SCHEMA_VERSION}")
    out = REPO / "var" / "bench" / f"migrate-{size}"
    ready = out / "v8" / "archive.db"
    if ready.exists():
        return ready
    source = SHARED / f"archive-{size}-v9" / "data"
    if not (source.parent / "complete").exists():
        raise SystemExit(f"no complete corpus at {source.parent}")
    (out / "v8").mkdir(parents=True, exist_ok=True)
    for name in ("archive.db", "keystore.json"):
        shutil.copy2(source / name, out / "v8" / name)
    conn = db.connect(ready, ba.bench_keys().archive_key)
    try:
        conn.execute("DROP INDEX log_leaves_device")
        conn.execute("ALTER TABLE verifications DROP COLUMN purpose")
        conn.execute("PRAGMA user_version = 8")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return ready


async def longest_stall(done: asyncio.Event) -> float:
    worst = 0.0
    loop = asyncio.get_running_loop()
    while not done.is_set():
        t0 = loop.time()
        await asyncio.sleep(TICK_S)
        worst = max(worst, loop.time() - t0 - TICK_S)
    return worst


def fresh_copy(v8: Path, work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("archive.db", "keystore.json"):
        shutil.copy2(v8.parent / name, work / name)


async def one_run(work: Path, off_loop: bool) -> tuple[float, float]:
    box = Box(BoxConfig(data_dir=work, port=0))
    keys = ba.bench_keys()
    done = asyncio.Event()
    monitor = asyncio.create_task(longest_stall(done))
    await asyncio.sleep(0.05)  # the monitor is running
    t0 = time.perf_counter()
    if off_loop:
        await box.open_off_loop(keys)
    else:
        box.open_with(keys)  # what the unlock did before: on the loop
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.05)
    done.set()
    stall = await monitor
    archive = box.require_archive()
    assert db.schema_version(archive.conn) == SCHEMA_VERSION
    await box.stop()
    return elapsed, stall


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    v8 = previous_schema_copy(size)
    work = v8.parent.parent / "run"
    for attempt in (1, 2):
        for off_loop in (False, True):
            fresh_copy(v8, work)
            elapsed, stall = asyncio.run(one_run(work, off_loop))
            how = "worker thread" if off_loop else "on the loop  "
            load = os.getloadavg()[0]
            print(
                f"run {attempt} {how}: unlock {elapsed:6.2f} s, loop's longest stall"
                f" {stall * 1000:8.1f} ms (load {load:.2f})",
                flush=True,
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
