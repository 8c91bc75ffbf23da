"""Migration 10 (the conversation index as an LSM) on a copy of a cached corpus.

Not a `make bench` row: it needs a corpus of the previous schema. It replaces
bench_lsm_probe.py (the probe that measured the design on copies before it was built).

Copies `<src>` (a corpus dir of the schema before, e.g. var/bench/archive-5000000-v9
of the lead's cache, never opened in place) to `<dst>` (e.g. my worktree's
var/bench/archive-5000000-v10), opens it (the migration runs), checkpoints, and prints
the migration's time and the bytes this process handed to write() for it (the copy
excluded). The copy is then a corpus of this schema (its `complete` marker and
build.json are copied with it), which the growth rows reuse instead of migrating on
every round's open.

    .venv/bin/python scripts/bench_lsm.py /work/wt/merge/var/bench/archive-1000000-v9 \
        var/bench/archive-1000000-v10
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import bench_archive as ba

from strongroom.archive import db
from strongroom.archive.schema import SCHEMA_VERSION


def migrate_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        raise SystemExit(f"{dst} exists: remove it first")
    t0 = time.perf_counter()
    shutil.copytree(src, dst)
    os.sync()  # the copy's writeback must not count as the migration's
    print(f"copied in {time.perf_counter() - t0:.1f} s, load {os.getloadavg()[0]:.2f}")
    data = dst / "data"
    conn = db.connect(data / "archive.db", ba.bench_keys().archive_key)
    try:
        found = db.schema_version(conn)
        dev0, io0, t0 = ba.device_written_bytes(data), ba.io_counters(), time.perf_counter()
        db.migrate(conn)
        migrated = time.perf_counter() - t0
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        io1, total = ba.io_counters(), time.perf_counter() - t0
        dev1 = ba.device_written_bytes(data)
        folded = conn.execute("SELECT count(*) FROM conv_folded").fetchone()[0]
    finally:
        conn.close()
    written = (io1.get("wchar", 0) - io0.get("wchar", 0)) / 2**20
    # write_bytes counts whole large folios (ba.io_counters): the device's sectors instead.
    disk = (dev1 - dev0) / 2**20 if dev0 is not None and dev1 is not None else float("nan")
    print(
        f"migration {found} -> {SCHEMA_VERSION}: {migrated:.1f} s ({total:.1f} s with the"
        f" checkpoint), {written:.0f} MiB handed to write() ({disk:.0f} MiB written by the"
        " device, every process);"
        f" {folded:,} keys in conv_folded; load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    migrate_copy(Path(sys.argv[1]), Path(sys.argv[2]))
