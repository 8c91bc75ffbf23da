"""Service rows for `make bench`: start to ready (the archive's open against a plain
sqlite3 open, then a whole BoxRuntime to its first HTTP 200) and the soak (ingest,
search and verify repeated; memory and file descriptors must not drift). Split out
of bench_archive.py, which keeps the corpus, the records and the measuring helpers."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import bench_archive as ba

from strongroom.archive.committer import GroupCommitter
from strongroom.archive.search import search_messages
from strongroom.archive.verify import verify_archive

# -- start to ready -------------------------------------------------------------------


@dataclass(frozen=True)
class StartRun:
    archive_open_ms: float
    plain_open_ms: float
    runtime_ready_ms: float | None
    runtime_note: str


def _plain_open(plain_path: Path) -> float:
    t0 = time.perf_counter()
    conn = sqlite3.connect(plain_path)
    conn.execute(
        "SELECT tree_size, root_hash, timestamp_ms, signature FROM tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed * 1000


def _archive_open(data_dir: Path) -> float:
    t0 = time.perf_counter()
    archive = ba.open_archive(data_dir)
    head = archive.latest_tree_head()
    elapsed = time.perf_counter() - t0
    archive.close()
    assert head is not None
    return elapsed * 1000


def _prepare_runtime_dir(archive_dir: Path) -> tuple[Path, Path]:
    """A keystore (fast Argon2 limits: it is the keyfile slot we time) and a keyfile."""
    from nacl.pwhash import argon2id

    from strongroom.identity import Keystore

    data = archive_dir / "data"
    keyfile = archive_dir / "unlock.key"
    keystore_path = data / "keystore.json"
    if not keystore_path.exists():
        keystore = Keystore.create(
            keystore_path,
            ba.BENCH_ENTROPY,
            ba.BENCH_PASSPHRASE,
            opslimit=argon2id.OPSLIMIT_MIN,
            memlimit=argon2id.MEMLIMIT_MIN,
        )
        keystore.add_keyfile_slot(ba.BENCH_ENTROPY, keyfile)
    return data, keyfile


async def _runtime_ready(data: Path, keyfile: Path) -> float:
    import aiohttp

    from strongroom.config import BoxConfig
    from strongroom.runtime import BoxRuntime

    config = BoxConfig(
        data_dir=data, port=0, unlock_mode="unattended", unlock_keyfile=keyfile, mock_gpio=True
    )
    t0 = time.perf_counter()
    runtime = BoxRuntime(config)
    await runtime.start()
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(runtime.url + "/") as response:
                    if response.status == 200:
                        break
                if time.perf_counter() - t0 > 60:
                    raise TimeoutError(f"no HTTP 200 after 60 s (last {response.status})")
                await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        if runtime.box.archive is None:
            raise RuntimeError("the runtime answered but did not unlock its archive")
        return elapsed * 1000
    finally:
        await runtime.stop()


def start_to_ready(archive_dir: Path) -> StartRun:
    plain_ms = statistics.median(_plain_open(ba.plain_copy(archive_dir)) for _ in range(5))
    open_ms = statistics.median(_archive_open(archive_dir / "data") for _ in range(5))
    try:
        data, keyfile = _prepare_runtime_dir(archive_dir)
        ready: float | None = asyncio.run(_runtime_ready(data, keyfile))
        note = "BoxRuntime, unattended keyfile unlock, port 0, to first HTTP 200 on /"
    except Exception as exc:  # the runtime is still being built by others: say why
        ready, note = None, f"runtime not available: {type(exc).__name__}: {exc}"[:160]
    return StartRun(open_ms, plain_ms, ready, note)


# -- soak -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakRun:
    seconds: float
    cycles: int
    messages: int
    rss_start_mib: float
    rss_end_mib: float
    fds_start: int
    fds_end: int
    verify_ok: bool


def soak(work: Path, seconds: float, per_cycle: int = 500, producers: int = 5) -> SoakRun:
    """Repeat committer ingest + search + verify until `seconds` pass; report drift only."""
    path = ba.fresh_dir(work / "soak")
    archive = ba.open_archive(path)
    committer = GroupCommitter(archive)
    committer.start()
    phones = ba.add_phones(archive, producers)
    rss_start, fds_start = ba.rss_mib(), ba.open_fds()
    cycles = messages = 0
    verify_ok = True
    deadline = time.perf_counter() + seconds
    per_phone = per_cycle // producers
    try:
        while time.perf_counter() < deadline:

            async def push_all(cycle: int = cycles) -> None:
                await asyncio.gather(
                    *(
                        ba._produce(
                            committer,
                            ba.make_records(
                                key,
                                (cycle * producers + i) * per_phone,
                                per_phone,
                                size=256,
                                seed=i,
                            ),
                            device,
                            owner,
                            16,
                            [],
                            None,
                        )
                        for i, (device, owner, key) in enumerate(phones)
                    )
                )

            asyncio.run(push_all())
            messages += per_phone * producers
            reader = archive.reader()
            try:
                for query in ba.SEARCH_QUERIES:
                    search_messages(reader, query, limit=50)
                report = verify_archive(
                    reader, archive.blobs, bytes(archive.signing_key.verify_key)
                )
                verify_ok = verify_ok and report.ok
            finally:
                reader.close()
            cycles += 1
        return SoakRun(
            seconds, cycles, messages, rss_start, ba.rss_mib(), fds_start, ba.open_fds(), verify_ok
        )
    finally:
        committer.stop()
        archive.close()
        shutil.rmtree(path, ignore_errors=True)
