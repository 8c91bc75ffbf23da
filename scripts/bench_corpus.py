"""The big benchmark archives: built once through `Archive.write_batch`, cached.

Cached under `var/bench/archive-<size>-v<schema>/` (a `complete` marker is written
last, so an interrupted build is rebuilt rather than reused; `build.json` says
how long the build took). Split out of bench_archive.py.
"""

from __future__ import annotations

import functools
import gc
import json
import multiprocessing
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import bench_archive as ba

from strongroom.archive import writes
from strongroom.archive.record import Record, leaf_data
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive, Txn, WriteOp
from strongroom.proof.merkle import leaf_hash

# -- the big archives ----------------------------------------------------------------

_BUILD_CHUNK = 10_000
_BUILD_PHONES = 20
_BUILD_CHUNKS_PER_COMMIT = 10
_BUILD_CACHE_KIB = 512 * 1024
_SIGNERS = 2
_AHEAD = 4  # chunks signed ahead of the writer
_TEXT_POOL_BITS = 12  # 4,096 texts


def bulk_store_messages(records: Sequence[Record], device_id: int, owner: str) -> WriteOp:
    """One write op storing many new messages with executemany: the bulk-load path.

    It writes exactly the rows `writes.store_record` writes for a new message
    (records, messages and, at the end of the batch, their FTS entries; one log leaf
    each), minus the per-record duplicate and revocation look-ups, which a
    fresh corpus of unique records from a paired phone does not need.
    verify_archive checks the result like any other archive.
    """

    def op(txn: Txn) -> int:
        conn = txn.conn
        conversations: dict[str, int] = {}
        last_at: dict[int, int] = {}
        for record in records:
            if record.conversation not in conversations:
                conversations[record.conversation] = writes._conversation_id(
                    txn, owner, record.conversation, record.peer, record.sent_at
                )
            conv = conversations[record.conversation]
            last_at[conv] = max(last_at.get(conv, 0), record.sent_at)
        # Each conversation's own newest message, as store_record leaves it (setting
        # every conversation of the owner to the chunk's newest made them all alike).
        conn.executemany(
            "UPDATE conversations SET last_at = max(last_at, ?) WHERE id = ?",
            [(at, conv) for conv, at in last_at.items()],
        )
        (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM records").fetchone()
        first = txn.first_index + len(txn.leaves)
        leaves, rows, messages = [], [], []
        for n, record in enumerate(records):
            index, row_id = first + n, next_id + n
            data = leaf_data(record.kind, record.record_id, txn.at_ms)
            leaves.append((index, record.kind, data, txn.at_ms))
            txn.leaves.append(leaf_hash(data))
            conv = conversations[record.conversation]
            rows.append((row_id, *writes.record_row(record, device_id, conv, txn.at_ms, index)))
            text, at, length = writes.message_text(record, text_once=True)
            messages.append(
                (row_id, conv, record.direction, record.sender, text, at, length, record.sent_at)
            )
        conn.executemany(
            "INSERT INTO log_leaves (idx, kind, leaf_data, at) VALUES (?, ?, ?, ?)", leaves
        )
        conn.executemany(
            "INSERT INTO records (id, record_id, device_id, conversation_id, kind, client_id,"
            " sent_at, received_at, body, signature, content_sha256, log_index)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO messages (record_id, conversation_id, direction, sender, text, text_at,"
            " text_len, sent_at, edits_client_id, deleted, has_attachment)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0)",
            messages,
        )
        return len(records)

    return op


def _build_settings(archive: Archive) -> None:
    """Connection settings for the build only (the file's content does not depend on them).

    A big page cache: a build commits 100,000 records at a time (the box keeps its
    16 MiB). No WAL and no fsync: each page is written once, at its commit, instead
    of into the WAL and again by the checkpoint; an interrupted build has no
    `complete` marker and is rebuilt from scratch. The file is fsynced once, at the
    end, before that marker is written (_mark_complete).
    The garbage collector is off: a chunk creates ~10^5 objects, none in a cycle.
    """
    conn = archive.conn
    conn.execute(f"PRAGMA cache_size = -{_BUILD_CACHE_KIB}")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA journal_mode = MEMORY")
    gc.freeze()
    gc.disable()


def _box_settings(archive: Archive) -> None:
    """Back to the box's journal (WAL, in the file's header) once the build is done."""
    archive.conn.execute("PRAGMA journal_mode = WAL")
    archive.conn.execute("PRAGMA synchronous = FULL")


def _build_done() -> None:
    gc.enable()
    gc.unfreeze()


def _phone_of(start: int) -> int:
    # Each chunk belongs to one phone, as a phone pushes its own conversations.
    return (start // _BUILD_CHUNK) % _BUILD_PHONES


def _signed_chunk(args: tuple[int, int]) -> tuple[list[Record], float]:
    """A chunk's records, signed in a worker process; and the CPU seconds it took."""
    start, count = args
    cpu0 = time.process_time()
    key = ba.phone_key(_phone_of(start))
    texts = _text_pool()
    rng = random.Random(7 * 1_000_003 + start)
    records = []
    for n in range(start, start + count):
        # A text from the pool, made unique by its number as message_text makes them.
        text = f"{texts[rng.getrandbits(_TEXT_POOL_BITS)]} n°{n}"
        record = ba.make_record(key, n, f"conv-{n % 2000}", text, 1_700_000_000_000 + n * 1000)
        # Hashed here, on a signing core: the cached value travels with the record.
        _ = record.record_id
        records.append(record)
    return records, time.process_time() - cpu0


@functools.cache
def _text_pool() -> list[str]:
    """Message texts drawn once per signing process (bench_archive.message_text's words
    and weights), so a record costs a pick instead of 6 to 30 weighted draws."""
    rng = random.Random(7)
    return [ba.message_text(rng, 0).removesuffix(" n°0") for _ in range(1 << _TEXT_POOL_BITS)]


def _chunks(start: int, total: int) -> Iterator[tuple[int, int]]:
    for first in range(start, total, _BUILD_CHUNK):
        yield first, min(_BUILD_CHUNK, total - first)


def _cached_at(path: Path) -> tuple[int, int] | None:
    """(size, schema) of a corpus directory's name, archive-<size>-v<schema>."""
    try:
        _, size, version = path.name.split("-")
        return int(size), int(version.removeprefix("v"))
    except ValueError:
        return None


def upgrade_cached(work: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Corpora cached at an older schema, migrated in place and renamed to this one's.

    What the box does with its own archive at unlock (Archive.open runs the
    migrations): a new migration costs the bench its run, not a rebuild of every
    corpus (5M: minutes). Per size, the newest older schema is taken; the plain
    copy (plain.db) was exported at the old schema and is dropped, made again when
    next needed. A migration interrupted before the rename leaves the old name: the
    next run opens it again (each migration step is one transaction)."""
    newest: dict[int, tuple[int, Path]] = {}
    for old in work.glob("archive-*-v*"):
        found = _cached_at(old)
        if found is None or not (old / "complete").exists():
            continue
        size, version = found
        if version < SCHEMA_VERSION and version > newest.get(size, (0, old))[0]:
            newest[size] = (version, old)
    upgraded = []
    for size, (version, old) in sorted(newest.items()):
        path = work / f"archive-{size}-v{SCHEMA_VERSION}"
        if (path / "complete").exists():
            continue
        t0 = time.perf_counter()
        archive = ba.open_archive(old / "data")  # runs the migrations
        archive.close()
        seconds = time.perf_counter() - t0
        for stale in ("plain-complete", "plain.db"):
            (old / stale).unlink(missing_ok=True)
        info: dict[str, float] = {
            **build_info(old),
            "migrated_from_schema": version,
            "migration_seconds": seconds,
        }
        (old / "build.json").write_text(json.dumps(info) + "\n")
        shutil.rmtree(path, ignore_errors=True)  # an unfinished build of this schema
        os.replace(old, path)
        log(f"  migrated the cached {size:,}-message corpus from schema {version}: {seconds:.1f} s")
        upgraded.append(path)
    return upgraded


def _smaller_corpus(work: Path, size: int) -> tuple[Path, int] | None:
    """The biggest complete corpus of this schema smaller than `size`, to extend."""
    found: list[tuple[int, Path]] = []
    for path in work.glob(f"archive-*-v{SCHEMA_VERSION}"):
        try:
            n = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if n < size and n % _BUILD_CHUNK == 0 and (path / "complete").exists():
            found.append((n, path))
    if not found:
        return None
    n, path = max(found)
    return path, n


def build_info(path: Path) -> dict[str, float]:
    """How the cached corpus at `path` was built (seconds, records written, load)."""
    try:
        info = json.loads((path / "build.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in info.items()}


def cached_archive(work: Path, size: int, log: Callable[[str], None] = print) -> Path:
    """The data dir of an archive holding `size` messages, built once and reused.

    A bigger corpus is built by extending a copy of the biggest smaller one of the
    same schema (the same chunks, phones and write path as a build from empty, so
    the records are the same). Records are signed in a worker process while this
    one writes, so the build costs about the write time alone on two cores.
    """
    path = work / f"archive-{size}-v{SCHEMA_VERSION}"
    if not (path / "complete").exists():
        upgrade_cached(work, log)
    if not (path / "complete").exists():
        _build(work, path, size, log)
    import bench_corpus_merge  # it imports this module

    bench_corpus_merge.finish_fts_merge(path, log)
    return path


def _build(work: Path, path: Path, size: int, log: Callable[[str], None]) -> None:
    """Build the corpus at `path` (cached_archive)."""
    ba.fresh_dir(path)
    t0 = time.perf_counter()
    start = 0
    smaller = _smaller_corpus(work, size)
    if smaller is not None:
        base, start = smaller
        log(f"  extending a copy of the {start:,}-message corpus to {size:,}")
        shutil.copytree(base / "data", path / "data")
    copied = time.perf_counter() - t0
    archive = ba.open_archive(path / "data")
    waited = signing_cpu = 0.0
    cpu0 = time.process_time()
    try:
        phones = ba.add_phones(archive, _BUILD_PHONES)
        _build_settings(archive)
        ctx = multiprocessing.get_context("fork")
        done = start
        # Two signing processes: signing (~40 µs a record) costs about what writing
        # does, and a signer runs whenever this process waits on the disk or on a
        # core another process holds; the OS spreads the three over both cores.
        with ctx.Pool(_SIGNERS) as pool:
            # A few chunks signed ahead: imap would queue the whole corpus in memory.
            chunks = list(_chunks(start, size))
            pending = [pool.apply_async(_signed_chunk, (c,)) for c in chunks[:_AHEAD]]
            batch: list[WriteOp] = []
            for n, (first, _) in enumerate(chunks):
                w0 = time.perf_counter()
                records, cpu = pending.pop(0).get()
                waited += time.perf_counter() - w0
                signing_cpu += cpu
                if n + _AHEAD < len(chunks):
                    pending.append(pool.apply_async(_signed_chunk, (chunks[n + _AHEAD],)))
                device, owner, _ = phones[_phone_of(first)]
                batch.append(bulk_store_messages(records, device, owner))
                done += len(records)
                # Big transactions: the per-conversation index dirties pages all over,
                # so the pages written per record fall as the batch grows.
                if len(batch) == _BUILD_CHUNKS_PER_COMMIT or done == size:
                    archive.write_batch(batch)
                    batch = []
                    log(
                        f"  built {done:,}/{size:,} messages ({time.perf_counter() - t0:.0f} s,"
                        f" {waited:.0f} s of it waiting for signed records)"
                    )
        _box_settings(archive)
    finally:
        _build_done()
        archive.close()
    info = {
        "seconds": time.perf_counter() - t0,
        "written": size - start,
        "extended_from": start,
        "load_average": os.getloadavg()[0],
        "copy_seconds": copied,
        "waited_for_signing_seconds": waited,
        "writer_cpu_seconds": time.process_time() - cpu0,
        "signing_cpu_seconds": signing_cpu,
    }
    (path / "build.json").write_text(json.dumps(info) + "\n")
    data = sorted((path / "data").glob("archive.db*"))
    _mark_complete(path / "complete", f"{size}\n", [*data, path / "build.json"])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mark_complete(marker: Path, text: str, files: Sequence[Path]) -> None:
    """Write `marker` only once `files` (and their directories) are on the disk.

    The build writes with synchronous=OFF: its pages may sit in the page cache. A
    marker that reached the disk before them would, after a power cut, vouch for a
    torn database that every later run reuses. So: the files, their directories,
    then the marker itself through a renamed, synced temporary file.
    """
    for file in files:
        if file.exists():
            _fsync(file)
    for directory in sorted({file.parent for file in files} | {marker.parent.parent}):
        _fsync(directory)
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(text)
    _fsync(partial)
    os.replace(partial, marker)
    _fsync(marker.parent)


def plain_copy(archive_dir: Path) -> Path:
    """An unencrypted copy of the same database (sqlcipher_export), cached beside it."""
    plain = archive_dir / "plain.db"
    marker = archive_dir / "plain-complete"
    if marker.exists():
        return plain
    plain.unlink(missing_ok=True)
    archive = ba.open_archive(archive_dir / "data")
    try:
        archive.conn.execute("ATTACH DATABASE ? AS plaintext KEY ''", (str(plain),))
        # A new file written once: no journal, no fsync until the end (an interrupted
        # copy has no marker and is made again), big caches for the index builds the export runs.
        # At 1M messages: 11.1 -> 7.0 s, CPU 5.1 -> 4.2 s.
        for pragma in (
            "plaintext.synchronous = OFF",
            "plaintext.journal_mode = OFF",
            f"plaintext.cache_size = -{_BUILD_CACHE_KIB // 2}",
            f"main.cache_size = -{_BUILD_CACHE_KIB // 2}",
        ):
            archive.conn.execute(f"PRAGMA {pragma}")
        archive.conn.execute("SELECT sqlcipher_export('plaintext')")
        archive.conn.execute("DETACH DATABASE plaintext")
    finally:
        archive.close()
    # Written with synchronous=OFF too: on the disk before the marker vouches for it.
    _mark_complete(marker, "ok\n", [plain])
    return plain
