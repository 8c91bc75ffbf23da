"""Where the bytes of a group commit go: WAL frames per b-tree (issue #20 item 1).

A diagnostic, not a `make bench` row. It ingests records through the
GroupCommitter into a copy of a cached corpus with automatic checkpoints off,
then reads the WAL: every frame names the page it holds (the frame headers are
not encrypted, even under SQLCipher), and commit frames close a transaction.
SQLCipher has no dbstat, so pages are mapped to tables and indexes on the
plain-SQLite copy of the same corpus (`plain.db`, written by the search
benchmark), run through the same write path with the stdlib sqlite3 module.

    .venv/bin/python scripts/bench_pages.py var/bench/archive-1000000-v8 [count [which [SQL...]]]

`which` is both, cipher or plain; any SQL after it runs on the copy before the
ingest, to compare settings, e.g. FTS5's merge settings (persistent in the copy):
"INSERT INTO messages_fts(messages_fts, rank) VALUES ('automerge', 16)".

It also replays SQLite's automatic checkpoint over the kept WAL at several
intervals (what each would copy into the file) and counts what the ingest handed
to write(). BENCH_PAGES_WORK names the scratch dir (default: beside the corpus),
so a corpus one must not write into can be read from where it is.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import struct
import sys
import types
from collections import Counter
from contextlib import closing
from pathlib import Path

import bench_archive as ba

from strongroom.archive import db as archive_db
from strongroom.archive import store as archive_store
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.schema import SCHEMA_VERSION

PRODUCERS = 10
WINDOW = 64


def wal_frames(wal: Path) -> tuple[int, list[list[int]]]:
    """The page size and, per committed transaction, the page numbers it wrote."""
    data = wal.read_bytes()
    magic, _version, page_size, _ckpt, salt1, salt2 = struct.unpack(">IIIIII", data[:24])
    if magic not in (0x377F0682, 0x377F0683):
        raise ValueError(f"{wal} is not a WAL file")
    commits: list[list[int]] = []
    current: list[int] = []
    offset = 32
    while offset + 24 + page_size <= len(data):
        pgno, commit_size, s1, s2 = struct.unpack(">IIII", data[offset : offset + 16])
        if (s1, s2) != (salt1, salt2):
            break  # a stale frame from before the last WAL reset
        current.append(pgno)
        if commit_size:
            commits.append(current)
            current = []
        offset += 24 + page_size
    return page_size, commits


def ingest(data_dir: Path, count: int, setup: tuple[str, ...] = ()) -> int:
    """`count` 1 KiB messages from ten phones, as bench_growth does, checkpoints off.

    Returns the bytes this process handed to write() meanwhile: with checkpoints
    off, anything beyond the WAL's frames is some other file (journal, temp files)."""
    archive = ba.open_archive(data_dir)
    for sql in setup:
        archive.conn.execute(sql)
    archive.conn.execute("PRAGMA wal_autocheckpoint = 0")
    archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    committer = GroupCommitter(archive)
    try:
        phones = ba.add_phones(archive, PRODUCERS)
        archive.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        per_phone = count // PRODUCERS
        first = 50_000_000
        records = [
            ba.make_records(
                key, first + i * per_phone, per_phone, size=ba.MESSAGE_BYTES, seed=100 + i
            )
            for i, (_, _, key) in enumerate(phones)
        ]
        committer.start()
        latencies: list[float] = []

        async def run() -> None:
            await asyncio.gather(
                *(
                    ba._produce(committer, recs, device, owner, WINDOW, latencies, None)
                    for recs, (device, owner, _) in zip(records, phones, strict=True)
                )
            )

        wchar0 = ba.written_bytes()
        asyncio.run(run())
        written = ba.written_bytes() - wchar0
        # Keep the WAL for reading: a last connection close would checkpoint it.
        shutil.copyfile(data_dir / "archive.db-wal", data_dir / "kept.wal")
    finally:
        committer.stop()
        archive.close()
    return written


def checkpoint_writes(
    commits: list[list[int]], interval: int, names: dict[int, str] | None = None
) -> tuple[int, int, Counter[str]]:
    """What automatic checkpoints every `interval` WAL frames would copy into the file.

    SQLite checkpoints after the commit that takes the WAL to `interval` frames,
    writing each distinct page of the window once, and restarts the WAL; the growth
    row also checkpoints at the end. Returns (checkpoints, pages written, per b-tree).
    """
    window: set[int] = set()
    frames = checkpoints = pages = 0
    by_tree: Counter[str] = Counter()

    def flush() -> None:
        nonlocal pages, checkpoints
        pages += len(window)
        checkpoints += 1
        if names is not None:
            by_tree.update(names.get(p, "?new/free") for p in window)
        window.clear()

    for commit in commits:
        window.update(commit)
        frames += len(commit)
        if frames >= interval:
            flush()
            frames = 0
    if window:
        flush()
    return checkpoints, pages, by_tree


def _plain_sqlite() -> None:
    """Route the archive's connections to the stdlib sqlite3 (it has dbstat)."""
    shim = types.SimpleNamespace(
        connect=sqlite3.connect,
        Error=sqlite3.Error,
        DatabaseError=sqlite3.DatabaseError,
        OperationalError=sqlite3.OperationalError,
    )
    archive_db.sqlcipher3 = shim  # type: ignore[assignment]
    archive_store.sqlcipher3 = shim  # type: ignore[assignment]


def report(
    label: str, wal: Path, count: int, names: dict[int, str] | None, written: int = 0
) -> None:
    page_size, commits = wal_frames(wal)
    frames = sum(len(c) for c in commits)
    distinct = len({p for c in commits for p in c})
    print(
        f"== {label}: {len(commits)} commits, {count} records"
        f" ({count / len(commits):.0f}/commit, {frames / len(commits):.0f} frames/commit),"
        f" page {page_size} B"
    )
    wal_bytes = frames * (page_size + 24)
    if written:
        print(
            f"   handed to write() during the ingest: {written / count / 1024:.2f} KiB/record,"
            f" WAL frames {wal_bytes / count / 1024:.2f} KiB/record (the rest: other files)"
        )
    for interval in (1_000, archive_db.WAL_AUTOCHECKPOINT_PAGES, 40_000, 100_000):
        n, pages, _ = checkpoint_writes(commits, interval)
        print(
            f"   checkpoint every {interval:>7,} frames: {n:3} checkpoints,"
            f" {pages * page_size / count / 1024:5.2f} KiB/record copied;"
            f" WAL + checkpoints {(wal_bytes + pages * page_size) / count / 1024:5.2f} KiB/record"
        )
    print(
        f"   WAL frames per record: {frames / count:.2f}"
        f" ({frames * page_size / count / 1024:.1f} KiB)"
    )
    print(
        f"   distinct pages (what one checkpoint writes): {distinct / count:.2f} per record"
        f" ({distinct * page_size / count / 1024:.1f} KiB)"
    )
    repeated = frames - sum(len(set(c)) for c in commits)
    print(
        "   frames repeating a page of their own commit (cache spills):"
        f" {repeated / count:.3f}/record"
    )
    if names is None:
        return
    by_tree: Counter[str] = Counter(names.get(p, "?new/free") for c in commits for p in c)
    distinct_by: Counter[str] = Counter(
        names.get(p, "?new/free") for p in {p for c in commits for p in c}
    )
    _, _, ckpt_by = checkpoint_writes(commits, archive_db.WAL_AUTOCHECKPOINT_PAGES, names)
    print(
        f"   {'b-tree':40} {'frames/commit':>14} {'frames/rec':>11} {'distinct/rec':>13}"
        f" {'checkpointed/rec':>17} {'KiB/rec, both':>14}"
    )
    for name, n in by_tree.most_common():
        both = (n * (page_size + 24) + ckpt_by[name] * page_size) / count / 1024
        print(
            f"   {name:40} {n / len(commits):14.1f} {n / count:11.3f}"
            f" {distinct_by[name] / count:13.3f} {ckpt_by[name] / count:17.3f} {both:14.2f}"
        )
    commits_of: dict[int, int] = Counter(p for c in commits for p in set(c))
    for name in ("messages", "records"):
        spread = Counter(n for p, n in commits_of.items() if names.get(p) == name)
        print(f"   {name}: pages by the number of commits writing them: {sorted(spread.items())}")


def page_owners(db: Path) -> dict[int, str]:
    conn = sqlite3.connect(db)
    try:
        return {int(p): str(n) for n, p in conn.execute("SELECT name, pageno FROM dbstat")}
    finally:
        conn.close()


def main() -> None:
    corpus = Path(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    # BENCH_PAGES_WORK: a scratch dir of one's own, to read a corpus one must not write.
    work = Path(os.environ.get("BENCH_PAGES_WORK", corpus.parent / "pages-scratch"))
    shutil.rmtree(work, ignore_errors=True)
    which = sys.argv[3] if len(sys.argv) > 3 else "both"
    setup = tuple(sys.argv[4:])
    if which in ("both", "cipher"):
        cipher = work / "cipher"
        shutil.copytree(corpus / "data", cipher)
        written = ingest(cipher, count, setup)
        report("SQLCipher", cipher / "kept.wal", count, None, written)
        shutil.rmtree(cipher)
    if which in ("both", "plain"):
        plain = work / "plain"
        plain.mkdir(parents=True)
        shutil.copyfile(corpus / "plain.db", plain / "archive.db")
        with closing(sqlite3.connect(plain / "archive.db")) as conn:
            # sqlcipher_export copies the tables, not the schema version.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        _plain_sqlite()
        written = ingest(plain, count, setup)
        names = page_owners(plain / "archive.db")
        report("plain SQLite copy", plain / "kept.wal", count, names, written)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
