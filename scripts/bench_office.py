"""Records-office reads at size: the holds page (`hold_reach`) and the facts every office
page and retention run loads (`load_facts`), on the cached search corpus.

Each is timed on the SQLCipher archive (a reader connection, warm) against a ceiling
measured in the same run: the same function on a plain SQLite copy, so the ratio is
what encryption adds to reads that are indexed (tests/test_office_reads.py checks
that no statement they run scans every message or record). The note gives, for scale,
one pass over every message of the plain copy: what these reads used to cost at least.
The holds are built in memory (never written): the cached corpus is left as it was.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_archive as ba
from bench_archive import Figure

from strongroom.office.facts import load_facts
from strongroom.office.holds import Hold, HoldSpec, hold_reach

ROUNDS = 5


def median_s(work: Callable[[], Any], rounds: int = ROUNDS) -> float:
    """Seconds one call of `work` takes, median of `rounds` after one warm-up call."""
    work()  # warm the page cache, as a page served twice is
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _holds(first_ms: int, last_ms: int) -> list[Hold]:
    """A person, a conversation, the first hundredth of the dates, and a person nobody is."""
    span = max(1, (last_ms - first_ms) // 100)
    specs = [
        HoldSpec("person", "bench", person="staff-1"),
        HoldSpec("conversation", "bench", conversation_id=5),
        HoldSpec("date_range", "bench", from_ms=first_ms, to_ms=first_ms + span),
        HoldSpec("person", "bench", person="nobody at all"),
    ]
    return [Hold(n, spec, "bench", 0, None, None, None) for n, spec in enumerate(specs, 1)]


def office_section(plan: Any, work: Path) -> list[Figure]:
    """The rows of `make bench` (scripts/bench.py calls this with its plan)."""
    size = int(plan.search_messages)
    archive_dir = ba.cached_archive(work, size)
    plain = sqlite3.connect(ba.plain_copy(archive_dir))
    archive = ba.open_archive(archive_dir / "data")
    reader = archive.reader()
    try:
        first, last = reader.execute("SELECT min(sent_at), max(sent_at) FROM records").fetchone()
        holds = _holds(int(first), int(last))
        covered = sum(r.records for r in hold_reach(reader, holds).values())
        conversations = len(load_facts(reader))
        page_s = median_s(lambda: hold_reach(reader, holds))
        page_plain_s = median_s(lambda: hold_reach(plain, holds))
        facts_s = median_s(lambda: load_facts(reader))
        facts_plain_s = median_s(lambda: load_facts(plain))
        scan_s = median_s(
            lambda: plain.execute("SELECT conversation_id, sender FROM messages").fetchall()
        )
    finally:
        reader.close()
        archive.close()
        plain.close()
    what = "the same reads, plain sqlite3 copy"
    note = (
        f"{size:,} messages, {conversations:,} conversations, median of {ROUNDS};"
        f" one pass over every message (plain) {scan_s * 1000:.0f} ms"
    )
    return [
        Figure(
            f"records office: holds page reads, {len(holds)} holds, {size:,} messages",
            page_s * 1000,
            "ms",
            page_plain_s * 1000,
            what,
            aim="≤ 2 (what encryption adds)",
            note=f"{note}; the holds cover {covered:,} live records",
        ),
        Figure(
            f"records office: load_facts (office pages, retention), {size:,} messages",
            facts_s * 1000,
            "ms",
            facts_plain_s * 1000,
            what,
            aim="≤ 2 (what encryption adds)",
            note=note,
        ),
    ]
