"""Benchmarks of growth (issue #20): ingest, disk and memory at an archive size, and restore.

Used by scripts/bench.py. Every figure compares the grown archive with a
reference measured in the same run: ingest into an empty archive, a history
page at the end of a restore, the phone's own crypto.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import bench_archive as ba
import bench_reads
from nacl.signing import VerifyKey

from strongroom.archive import conv_keys
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.conv_keys import Fold
from strongroom.archive.db import Connection
from strongroom.archive.record import RECORD_SIGNING_CONTEXT, leaf_data
from strongroom.archive.store import Archive
from strongroom.peer.history import history_page
from strongroom.proof.merkle import leaf_hash, verify_inclusion

PRODUCERS = 10
WINDOW = 64
PAGE = 200  # the box's history page size (config.history_page_size)
PAGE_BYTES = 256 * 1024 - 4096  # the budget the peer session gives a page


def disk_bytes(data_dir: Path) -> int:
    """The archive's database file and WAL (blobs aside: these corpora have none)."""
    return sum(p.stat().st_size for p in data_dir.glob("archive.db*") if p.is_file())


@dataclass(frozen=True)
class GrowthRun:
    base_records: int
    msgs_per_s: float
    written_per_record: float  # bytes handed to write() (WAL frames, checkpoints)
    # Bytes the data dir's block device wrote in the window (sectors written, whole
    # device: an upper bound on a shared machine); NaN without a block device.
    disk_written_per_record: float
    cpu_us_per_record: float  # this process, all threads (committer + producers)
    idle_rss_mib: float
    peak_rss_mib: float
    loaded_rss_mib: float  # idle + the harness's pre-signed records, before the ingest
    # The conversation index's folds during the ingest (schema 10, conv_keys.FOLD_AT):
    # how many, the keys they moved, and the longest one's time.
    folds: int = 0
    fold_keys: int = 0
    fold_ms_max: float = 0.0
    # /proc/self/io write_bytes: page-cache folios this process turned dirty, counted
    # whole (ba.io_counters); 3x the bytes written on ext4's large folios, kept to show it.
    dirtied_per_record: float = 0.0

    @property
    def box_peak_rss_mib(self) -> float:
        """The box's share of the peak: what the ingest added over the loaded harness."""
        return self.idle_rss_mib + max(0.0, self.peak_rss_mib - self.loaded_rss_mib)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def growth_ingest(
    work: Path,
    base: Path | None,
    base_records: int,
    count: int,
    log: Callable[[str], None] = _stderr,
    *,
    in_place: bool = False,
) -> GrowthRun:
    """Ten phones push `count` new 1 KiB messages through the GroupCommitter into a
    copy of the archive at `base` (a cached corpus data dir), or into an empty one.

    in_place: `base` is already a scratch copy (bench_growth_rounds rolls it back
    between rounds); write into it and leave it there."""
    scratch = ba.fresh_dir(work / "growth-scratch")
    data = scratch / "data"
    if base is not None and in_place:
        data = base
    elif base is not None:
        log(f"  copying the {base_records:,}-record archive")
        shutil.copytree(base, data)
        os.sync()  # the copy's own writeback must not count as the ingest's
    archive = ba.open_archive(data)
    committer = GroupCommitter(archive)
    try:
        phones = ba.add_phones(archive, PRODUCERS)
        idle = ba.rss_mib()  # before the harness signs its records
        per_phone = count // PRODUCERS
        # Past every record of the corpus: new ids, later times, like a phone going on.
        first = base_records + 10_000_000
        records = [
            ba.make_records(
                key, first + i * per_phone, per_phone, size=ba.MESSAGE_BYTES, seed=100 + i
            )
            for i, (_, _, key) in enumerate(phones)
        ]
        committer.start()
        loaded = ba.rss_mib()
        ba.reset_peak_rss()
        latencies: list[float] = []

        async def run() -> None:
            await asyncio.gather(
                *(
                    ba._produce(committer, recs, device, owner, WINDOW, latencies, None)
                    for recs, (device, owner, _) in zip(records, phones, strict=True)
                )
            )

        folds: list[Fold] = []
        watch_folds(archive, folds)
        dev0 = ba.device_written_bytes(data)
        io0, cpu0, t0 = ba.io_counters(), time.process_time(), time.perf_counter()
        asyncio.run(run())
        elapsed = time.perf_counter() - t0
        # The committer folds the conversation index after a commit's acks, in steps:
        # the fold the last commits started belongs to this ingest. stop() waits for
        # the step under way; the steps it leaves for later commits are run here.
        committer.stop()
        while archive.folding:
            archive.fold_if_due()
        # Every page these records dirtied reaches the database file inside the
        # measured window: a run shorter than the checkpoint interval would
        # otherwise leave some of its writes uncounted, in the WAL.
        archive.checkpoint()
        cpu = time.process_time() - cpu0
        io1 = ba.io_counters()
        # The checkpoint fsynced the database file (synchronous = FULL), each commit
        # the WAL: what this window wrote has reached the device by now.
        dev1 = ba.device_written_bytes(data)
        done = len(latencies)
        return GrowthRun(
            base_records,
            done / elapsed,
            (io1.get("wchar", 0) - io0.get("wchar", 0)) / done,
            (dev1 - dev0) / done if dev0 is not None and dev1 is not None else float("nan"),
            cpu / done * 1e6,
            idle,
            ba.peak_rss_mib(),
            loaded,
            len(folds),
            sum(f.keys for f in folds),
            max((f.seconds * 1000 for f in folds), default=0.0),
            (io1.get("write_bytes", 0) - io0.get("write_bytes", 0)) / done,
        )
    finally:
        committer.stop()
        archive.close()
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class RestoreRun:
    records: int
    seconds: float  # box pages + phone checks, one thread
    crypto_seconds: float  # the phone's checks alone on the same items
    first_page_ms: float
    last_page_ms: float


def restore(archive_dir: Path, owner: str = "staff-0") -> RestoreRun:
    """A new phone's restore of every record of `owner`, in one process without Noise:
    the box's history pages (query + inclusion proofs), and for each item the phone's
    checks (Ed25519 signature of the record, inclusion proof to the page's head)."""
    archive = ba.open_archive(archive_dir)
    try:
        with closing(archive.reader()) as conn:
            keys = {
                int(i): VerifyKey(bytes(k))
                for i, k in conn.execute("SELECT id, sign_key FROM devices")
            }
            kinds = {int(i): str(k) for i, k in conn.execute("SELECT idx, kind FROM log_leaves")}
            pages: list[float] = []
            kept: list[tuple[bytes, bytes, VerifyKey, bytes, int, int, list[bytes], bytes]] = []
            cursor = 0
            t0 = time.perf_counter()
            while True:
                p0 = time.perf_counter()
                page = history_page(conn, owner, cursor, PAGE, PAGE_BYTES)
                pages.append(time.perf_counter() - p0)
                head = page.tree_head or {}
                for item in page.items:
                    entry = (
                        item["record"],
                        item["sig"],
                        keys[int(item["device"])],
                        leaf_data(kinds[item["log_index"]], _sha(item["record"]), item["at"]),
                        item["log_index"],
                        int(head["tree_size"]),
                        item["proof"],
                        bytes.fromhex(str(head["root_hash"])),
                    )
                    _phone_checks(*entry)
                    kept.append(entry)
                cursor = page.cursor
                if page.done:
                    break
            seconds = time.perf_counter() - t0
        c0 = time.perf_counter()
        for entry in kept:
            _phone_checks(*entry)
        crypto = time.perf_counter() - c0
    finally:
        archive.close()
    full = pages[:-1] or pages  # the last page may be short
    # Medians of five: the very first page also warms the page cache.
    first, last = statistics.median(full[:5]), statistics.median(full[-5:])
    return RestoreRun(len(kept), seconds, crypto, first * 1000, last * 1000)


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _phone_checks(
    record: bytes,
    sig: bytes,
    key: VerifyKey,
    leaf: bytes,
    index: int,
    size: int,
    proof: list[bytes],
    root: bytes,
) -> None:
    key.verify(RECORD_SIGNING_CONTEXT + record, sig)
    if not verify_inclusion(leaf_hash(leaf), index, size, proof, root):
        raise AssertionError(f"record at log index {index}: its proof does not verify")


# -- the report's rows ---------------------------------------------------------------


def _build_figure(corpus: Path, size: int, waited_s: float) -> ba.Figure:
    import bench_corpus

    info = bench_corpus.build_info(corpus)
    seconds = info.get("seconds")
    base = int(info.get("extended_from", 0))
    how = f"extending a copy of the {base:,}-record corpus" if base else "from empty"
    if "migrated_from_schema" in info:
        how += (
            f" (at schema {info['migrated_from_schema']:.0f}, since migrated in place in"
            f" {info.get('migration_seconds', 0.0):.1f} s)"
        )
    # A migration in this run takes seconds; a build, minutes.
    built_now = seconds is not None and waited_s > max(1.0, 0.5 * seconds)
    when = "in this run" if built_now else "cached: built by an earlier run"
    cpu = ""
    if "writer_cpu_seconds" in info:
        written = max(1.0, info.get("written", size))
        cpu = (
            f"; CPU per record {info['writer_cpu_seconds'] / written * 1e6:.0f} µs writing,"
            f" {info.get('signing_cpu_seconds', 0.0) / written * 1e6:.0f} µs signing"
            f" (two signing processes), {info.get('waited_for_signing_seconds', 0.0):.0f} s"
            f" waiting for them; copy {info.get('copy_seconds', 0.0):.0f} s; no WAL or fsync"
            " while building (the file's content is the same: tests/test_bench_corpus.py)"
        )
    return ba.Figure(
        f"corpus build, {size:,} messages",
        seconds,
        "s",
        note=f"{when}, {how}, bulk write_batch path (the same rows as store_record); "
        f"load average {info.get('load_average', float('nan')):.1f} at the end{cpu}"
        if seconds is not None
        else "built before build times were recorded",
    )


def _search_figures(corpus: Path, size: int, rounds: int) -> list[ba.Figure]:
    run = bench_reads.search_latency(corpus, rounds)
    what = "same query, plain sqlite3 copy"
    note = (
        f"{size:,} messages, {run.queries} queries, newest 50 with joins; each typed prefix"
        " asked as the indexed words it starts (archive/fts_terms.py)"
    )
    return [
        ba.Figure(
            f"full-text search p50 over {size:,} messages",
            run.p50_ms,
            "ms",
            run.plain_p50_ms,
            what,
            note=note,
        ),
        ba.Figure(
            f"full-text search p95 over {size:,} messages",
            run.p95_ms,
            "ms",
            run.plain_p95_ms,
            what,
            "< 50 ms at 1M and 5M messages",
            note,
        ),
    ]


def watch_folds(archive: Archive, folds: list[Fold]) -> None:
    """Collect every fold step of the conversation index the archive runs."""
    original = conv_keys.fold_step

    def spy(conn: Connection, after: int, keys: int) -> Fold:
        fold = original(conn, after, keys)
        folds.append(fold)
        return fold

    conv_keys.fold_step = spy  # type: ignore[assignment]  # this bench process only


def _written_note(run: GrowthRun) -> str:
    return (
        "bytes SQLite handed to write() (WAL frames + checkpoints, the last one included)"
        " per record; "
        f"the data dir's block device wrote {run.disk_written_per_record / 1024:.1f}"
        " KiB/record in the window (sectors written, every process: an upper bound on a"
        " shared machine); /proc/self/io write_bytes said"
        f" {run.dirtied_per_record / 1024:.1f}: it counts each page-cache folio turned dirty"
        " whole (up to MiBs on ext4's large folios), not bytes sent to the disk;"
        f" {run.folds} fold step(s) of the conversation index during the ingest"
        f" ({run.fold_keys:,} keys, longest {run.fold_ms_max:.0f} ms)"
    )


def restore_figures(work: Path, size: int, log: Callable[[str], None]) -> list[ba.Figure]:
    corpus = ba.cached_archive(work, size, log=log)
    run = restore(corpus / "data")
    rate = run.records / run.seconds
    ceiling = run.records / run.crypto_seconds
    million = 1_000_000 / rate
    return [
        ba.Figure(
            f"new-phone restore, {run.records:,} records of one owner in a {size:,}-record archive",
            rate,
            "msgs/s",
            ceiling,
            "the phone's checks alone: Ed25519 + inclusion proof",
            ">= 0.5 of ceiling; 1M messages < 5 min",
            f"box history pages ({PAGE}/page, proofs) + phone checks, one thread, no Noise "
            f"transport; 1M messages at this rate: {million / 60:.1f} min",
        ),
        ba.Figure(
            "history page at the start of a restore (median of 5 pages)",
            run.first_page_ms,
            "ms",
            run.last_page_ms,
            "the last 5 full pages of the same restore",
            "the same at any size (ratio ~1)",
            "the old query sorted every remaining record of the owner for each page",
        ),
    ]
