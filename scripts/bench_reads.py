"""Reading rows for `make bench`: full-text search on the big corpus, and a sealed
export of one conversation with its verifier (split out of bench_archive.py, which
keeps the corpus, the records and the measuring helpers these rows use)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import bench_archive as ba

from strongroom.archive import conv_keys, writes
from strongroom.archive.search import search_messages
from strongroom.archive.store import Archive

# -- search -------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRun:
    p50_ms: float
    p95_ms: float
    plain_p50_ms: float
    plain_p95_ms: float
    queries: int


def _time_queries(conn: sqlite3.Connection, rounds: int, budget_s: float) -> list[float]:
    """`rounds` passes over ba.SEARCH_QUERIES, fewer if `budget_s` runs out (one at least)."""
    for query in ba.SEARCH_QUERIES:  # warm the page cache: we measure queries, not the disk
        search_messages(conn, query, limit=50)
    samples = []
    deadline = time.perf_counter() + budget_s
    for _ in range(rounds):
        for query in ba.SEARCH_QUERIES:
            t0 = time.perf_counter()
            search_messages(conn, query, limit=50)
            samples.append((time.perf_counter() - t0) * 1000)
        if time.perf_counter() > deadline:
            break
    return samples


def search_latency(archive_dir: Path, rounds: int, budget_s: float = 90.0) -> SearchRun:
    """search_messages (FTS MATCH + joins, newest 50) on SQLCipher vs a plain sqlite3 copy."""
    plain_path = ba.plain_copy(archive_dir)
    archive = ba.open_archive(archive_dir / "data")
    reader = archive.reader()
    plain = sqlite3.connect(plain_path)
    try:
        encrypted = _time_queries(reader, rounds, budget_s)
        clear = _time_queries(plain, len(encrypted) // len(ba.SEARCH_QUERIES), budget_s)
    finally:
        plain.close()
        reader.close()
        archive.close()
    return SearchRun(
        ba.percentile(encrypted, 50),
        ba.percentile(encrypted, 95),
        ba.percentile(clear, 50),
        ba.percentile(clear, 95),
        len(encrypted),
    )


# -- export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRun:
    seconds: float
    zip_floor_seconds: float
    verify_seconds: float
    bundle_mib: float
    records: int
    verified: bool
    # CPU seconds of the calling thread (the export's rendering thread; the floor has
    # only that one): steadier than the wall clock when the machine is shared.
    cpu_seconds: float = 0.0
    floor_cpu_seconds: float = 0.0


def _zip_floor(archive: Archive, conversation_id: int, out: Path) -> tuple[float, float]:
    """The same records' signed bytes into a zip with a SHA-256 each: the streaming floor.
    Its seconds, wall clock and CPU (one thread)."""
    import zipfile

    reader = archive.reader()
    t0 = time.perf_counter()
    cpu0 = time.thread_time()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        # Found as the export finds them: the conversation index's two tables (schema 10).
        for log_index, body, sig in reader.execute(
            conv_keys.union(
                "SELECT r.log_index, r.body, r.signature FROM {keys} k"
                " JOIN records r ON r.id = k.record_id WHERE k.conversation_id = ?"
            ),
            conv_keys.per_arm([conversation_id]),
        ):
            hashlib.sha256(bytes(body)).digest()
            zf.writestr(f"records/L{log_index}.cbor", bytes(body))
            zf.writestr(f"records/L{log_index}.sig", bytes(sig))
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    reader.close()
    return elapsed, cpu


def export_time(work: Path, count: int) -> ExportRun:
    """office.export.export_bundle of one conversation of `count` messages, then its verifier."""
    from strongroom.office.export import ExportRequest, ExportScope, export_bundle
    from strongroom.office.verify_export import verify_bundle

    path = ba.fresh_dir(work / "export")
    archive = ba.open_archive(path / "data")
    try:
        ((device, owner, key),) = ba.add_phones(archive, 1)
        records = ba.make_records(key, 0, count, conversations=1)
        for i in range(0, count, 5000):
            archive.write_batch(
                [writes.store_record(r, device, owner) for r in records[i : i + 5000]]
            )
        (conversation_id,) = archive.conn.execute("SELECT id FROM conversations").fetchone()
        request = ExportRequest(
            ExportScope("conversation", conversation_id=int(conversation_id)),
            actor="bench",
            recipient="benchmark",
            reason="timing the export",
        )
        out = path / "export.zip"
        t0 = time.perf_counter()
        cpu0 = time.thread_time()
        result = export_bundle(archive, request, out)
        seconds = time.perf_counter() - t0
        cpu = time.thread_time() - cpu0
        t0 = time.perf_counter()
        report = verify_bundle(out)
        verify_seconds = time.perf_counter() - t0
        floor, floor_cpu = _zip_floor(archive, int(conversation_id), path / "floor.zip")
        size = out.stat().st_size / 1024 / 1024
        return ExportRun(
            seconds, floor, verify_seconds, size, result.records, report.ok, cpu, floor_cpu
        )
    finally:
        archive.close()
        shutil.rmtree(path, ignore_errors=True)
