"""Benchmarks of sealed exports (issue #20 item 4): the box's memory through a matter export.

Used by scripts/bench.py, and run as a script by tests/test_export_streaming.py:

    python scripts/bench_export.py --messages 20000 --work DIR

builds an archive of that many signed messages in 20 conversations, all of
one matter, then exports the matter in a fresh process that first imports the
web application (so its resident set starts where the box's does), and
prints one JSON object: the child's RSS before the export, its peak during
the export (VmHWM, reset after the archive is open), the growth between
them, the seconds, the records and the bundle's size.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import bench_archive as ba

from strongroom.archive import writes

CONVERSATIONS = 20


def build_matter_archive(data_dir: Path, count: int) -> int:
    """`count` signed 1 KiB-ish messages over CONVERSATIONS conversations, one matter."""
    from strongroom.office.matters import attach, create_matter

    archive = ba.open_archive(data_dir)
    try:
        ((device, owner, key),) = ba.add_phones(archive, 1)
        for start in range(0, count, 5000):
            batch = ba.make_records(
                key, start, min(5000, count - start), conversations=CONVERSATIONS
            )
            archive.write_batch([writes.store_record(r, device, owner) for r in batch])
        matter = int(archive.write(create_matter("BENCH-1", "Client", "bench", "bench")))
        for (conversation,) in archive.conn.execute("SELECT id FROM conversations").fetchall():
            archive.write(attach(matter, "bench", conversation_id=int(conversation)))
        return matter
    finally:
        archive.close()


def export_in_this_process(data_dir: Path, matter: int, out: Path) -> dict[str, Any]:
    """The child: open the archive as the box does, then export the matter."""
    import strongroom.web.app  # noqa: F401 - the box's modules: its resident set at rest
    from strongroom.office.export import ExportRequest, ExportScope, export_bundle

    archive = ba.open_archive(data_dir)
    try:
        before = ba.rss_mib()
        reset = ba.reset_peak_rss()
        request = ExportRequest(
            ExportScope("matter", matter_id=matter), "bench", "benchmark", "memory"
        )
        t0 = time.perf_counter()
        result = export_bundle(archive, request, out)
        seconds = time.perf_counter() - t0
        peak = ba.peak_rss_mib()
    finally:
        archive.close()
    return {
        "rss_before_mib": before,
        "peak_mib": peak,
        "growth_mib": peak - before,
        "peak_reset": reset,
        "seconds": seconds,
        "records": result.records,
        "bundle_mib": out.stat().st_size / 1024 / 1024,
    }


def measure(work: Path, count: int) -> dict[str, Any]:
    """Build (once per call) and export in a fresh spawned process."""
    path = ba.fresh_dir(work / f"export-rss-{count}")
    try:
        matter = build_matter_archive(path / "data", count)
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            result: dict[str, Any] = pool.apply(
                export_in_this_process, (path / "data", matter, path / "export.zip")
            )
        return result
    finally:
        shutil.rmtree(path, ignore_errors=True)


def export_rss_figures(work: Path, count: int) -> list[ba.Figure]:
    run = measure(work, count)
    name = f"box peak RSS during a {count:,}-message matter export"
    note = (
        f"{run['records']:,} records, {run['bundle_mib']:.1f} MiB bundle, {run['seconds']:.1f} s;"
        f" export in a fresh process that imported the web app first"
    )
    return [
        ba.Figure(
            name,
            run["peak_mib"],
            "MiB",
            run["rss_before_mib"],
            "the same process before the export (archive open)",
            aim="< 150 MiB",
            note=note,
        ),
        ba.Figure(
            "RSS growth during that export, per 1,000 records",
            run["growth_mib"] / max(1, run["records"]) * 1000,
            "MiB",
            note="(peak - before) / records x 1,000: flat when the export streams",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.work.resolve(), args.messages)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
