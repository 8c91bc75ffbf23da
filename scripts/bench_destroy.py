"""`make bench` rows for a destruction as the archive grows (issue #20, costs that
stay flat): the retention run destroying 1,000 records of a corpus, its wall time,
the memory it adds to the box and the bytes it hands to write().

A destruction changes the archive, so it runs on a scratch copy of the cached
corpus (the copy is not timed, and is deleted afterwards). The 1,000 records are
every message of the first conversations, governed by a one-day record-date
policy written into the copy, so the run plans, erases, certifies and scrubs
exactly what the daily job does. The ceiling of each row is the same destruction
at the base size (100k; 20k in --quick), measured in the same run.

Until this session every destruction VACUUMed the whole file with its copy in RAM
(at 1M records: 28 s, peak RSS 979 MiB, 1.9 GiB written for 1,000 records).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_archive as ba
from bench_archive import Figure
from bench_peer_harness import start_in_fresh_process, wait_for_child

from strongroom.archive import conv_keys
from strongroom.office import retention
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy

DUE = 1_000


@dataclass(frozen=True)
class DestroyRun:
    size: int
    destroyed: int
    seconds: float
    rss_before_mib: float
    peak_rss_mib: float
    written_mib: float


def destroy_on_copy(corpus_data: Path, work: Path, size: int) -> tuple[DestroyRun, DestroyRun]:
    """Copy the corpus's archive, destroy DUE records with the daily job, then DUE
    more the next night (the first wipes every free page once, the next only needs
    to when a release that froze them unzeroed could open the archive: scrub.py)."""
    scratch = Path(tempfile.mkdtemp(prefix="destroy-", dir=work))
    try:
        (scratch / "blobs").mkdir()
        shutil.copyfile(corpus_data / "archive.db", scratch / "archive.db")
        archive = ba.open_archive(scratch)
        try:
            with closing(archive.reader()) as conn:
                # Conversation by conversation through the conversation index (schema
                # 10): a GROUP BY over `records` would read the whole table, whose
                # pages would count in this process's RSS before the destruction.
                count_messages = conv_keys.summed(
                    "SELECT count(*) FROM {keys} k JOIN records r ON r.id = k.record_id"
                    " WHERE k.conversation_id = ? AND r.kind = 'message'"
                )
                # Two nights' worth: the first conversations (>= DUE messages), then
                # the next ones (>= DUE more).
                nights: list[list[int]] = [[], []]
                total = 0
                for (conv,) in conn.execute("SELECT id FROM conversations ORDER BY id"):
                    count = conn.execute(
                        f"SELECT {count_messages}", conv_keys.per_arm([conv])
                    ).fetchone()[0]
                    if not count:
                        continue
                    nights[0 if total < DUE else 1].append(int(conv))
                    total += int(count)
                    if total >= 2 * DUE:
                        break
            spec = PolicySpec("bench", Duration(1, "days"), "record_date", "destroy")
            policy = int(archive.write(create_policy(spec, "bench")))
            runs = []
            for conversations in nights:
                for conv in conversations:
                    archive.write(assign_policy("conversation", str(conv), policy, "bench"))
                # The corpus's heads were signed when it was built: now is after them.
                now = int(time.time() * 1000)
                ba.reset_peak_rss()
                rss, written = ba.rss_mib(), ba.written_bytes()
                t0 = time.perf_counter()
                result = retention.run(archive, now, approver="bench")
                seconds = time.perf_counter() - t0
                runs.append(
                    DestroyRun(
                        size,
                        result.destruction.destroyed,
                        seconds,
                        rss,
                        ba.peak_rss_mib(),
                        (ba.written_bytes() - written) / 2**20,
                    )
                )
            return runs[0], runs[1]
        finally:
            archive.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def destroy_figures(
    work: Path, base: int, sizes: tuple[int, ...], log: Callable[[str], None] = print
) -> list[Figure]:
    runs = {}
    for size in (base, *sizes):
        log(f"  destruction of {DUE:,} records at {size:,} (scratch copy)")
        corpus = ba.cached_archive(work, size, log=log) / "data"
        # A fresh process, as the box's own: its peak RSS is the destruction's.
        child = start_in_fresh_process(destroy_on_copy, corpus, work, size)
        runs[size] = wait_for_child(child, "the destruction's process")
    ceiling = runs[base][0]
    figures = []
    for size in sizes:
        run, later = runs[size]
        note = (
            f"{run.destroyed:,} destroyed; {run.written_mib:.0f} MiB handed to write()"
            f" (the base: {ceiling.written_mib:.0f} MiB)"
        )
        figures += [
            Figure(
                f"night: destruction of {DUE:,} records (retention run), {size:,} records",
                run.seconds * 1000,
                "ms",
                ceiling.seconds * 1000,
                f"the same at {base:,} records",
                "seconds (it was a whole-file VACUUM)",
                note,
            ),
            Figure(
                f"night: box peak RSS during that destruction, {size:,} records",
                run.peak_rss_mib,
                "MiB",
                run.rss_before_mib,
                "the same process before it (archive open)",
                "< 150 MiB",
                "a fresh process: archive open, policy assigned, then the retention run",
            ),
            Figure(
                f"night: MiB written by a destruction of {DUE:,} records the next night,"
                f" {size:,} records",
                later.written_mib,
                "MiB",
                run.written_mib,
                "the first night's (its free-page wipe included)",
                "free pages not wiped again",
                f"{later.destroyed:,} destroyed in {later.seconds:.1f} s; the first night wipes"
                " every free page once (~25,000 at 5M after migration 10), later nights none"
                " from schema scrub.ZEROED_FREES_FROM_SCHEMA on (an older release, whose FTS"
                " feed froze pages unzeroed, cannot open it)",
            ),
        ]
    return figures


def destroy_section(plan: Any, work: Path, log: Callable[[str], None] = print) -> list[Figure]:
    """bench.py's one call line: base 100k and the growth sizes; 20k and 30k in --quick."""
    base = 20_000 if plan.quick else 100_000
    sizes = tuple(n for n in plan.growth_sizes if n > base)
    return destroy_figures(work, base, sizes, log)


__all__ = ["DestroyRun", "destroy_figures", "destroy_on_copy", "destroy_section"]
