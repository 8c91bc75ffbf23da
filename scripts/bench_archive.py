"""Archive-level benchmarks for `make bench`: ingest, search, verify, start, memory, soak.

Every figure comes with a ceiling measured in the same run on the same
machine, so the ratio says how close the product path is to what the
hardware and the libraries allow, whatever the machine.

Big archives (the 1,000,000-message search corpus, the 100,000-record verify
archive) are built once through `Archive.write_batch` and cached under
`var/bench/` keyed by size and schema version; a `complete` marker is written
last, so an interrupted build is rebuilt rather than reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import random
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from strongroom.archive import conv_keys, writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.queries import search_messages
from strongroom.archive.record import Record, sign_record
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive
from strongroom.identity import BoxKeys, derive_box_keys

# A fixed identity: cached archives must open with the same keys next run.
BENCH_ENTROPY = hashlib.sha256(b"strongroom benchmark identity, never a real box").digest()
BENCH_PASSPHRASE = "benchmark passphrase, not a secret"
MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class Figure:
    """One row of the report. ratio = value / ceiling (stated in the table header)."""

    name: str
    value: float | None
    unit: str
    ceiling: float | None = None
    ceiling_what: str = ""
    aim: str = ""
    note: str = ""
    # Set when the row stands for several rounds: the median of each round's own
    # value / ceiling, which is steadier than the ratio of the two medians.
    median_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.median_ratio is not None:
            return self.median_ratio
        if self.value is None or not self.ceiling:
            return None
        return self.value / self.ceiling


def bench_keys() -> BoxKeys:
    return derive_box_keys(BENCH_ENTROPY)


def open_archive(data_dir: Path) -> Archive:
    keys = bench_keys()
    return Archive.open(data_dir, keys.archive_key, keys.blob_key, keys.signing_key)


def phone_key(n: int) -> SigningKey:
    return SigningKey(hashlib.sha256(f"bench phone {n}".encode()).digest())


def add_phones(archive: Archive, count: int) -> list[tuple[int, str, SigningKey]]:
    """Pair `count` phones (idempotent: same keys give the same device ids)."""
    phones = []
    for n in range(count):
        key = phone_key(n)
        owner = f"staff-{n}"
        device = writes.NewDevice(
            sign_key=bytes(key.verify_key),
            noise_key=hashlib.sha256(f"bench noise {n}".encode()).digest(),
            name=f"Phone {n}",
            owner=owner,
            role="staff",
            method="test",
        )
        phones.append((int(archive.write(writes.add_device(device))), owner, key))
    return phones


# -- message text ---------------------------------------------------------------

_WORDS = (
    "dossier rendez-vous cabinet audience tribunal avocat client patient ordonnance "
    "consultation résultat analyse contrat honoraires facture réunion urgence délai "
    "signature pièce jointe témoin jugement appel expertise médecin infirmière "
    "traitement allergie radiographie compte-rendu prescription mutuelle sécurité "
    "sociale divorce succession notaire bail licenciement prud'hommes assurance "
    "sinistre procès-verbal greffe huissier conclusions plaidoirie médiation "
    "hearing appointment court lawyer invoice contract meeting deadline evidence "
    "witness judgment appeal doctor nurse treatment allergy x-ray report insurance "
    "lease dismissal settlement notary estate custody hospital surgery referral "
    "bonjour merci demain lundi mardi mercredi jeudi vendredi matin après-midi soir "
    "confirmer annuler reporter envoyer recevoir appeler rappeler vérifier préparer "
    "le la les un une des du de et ou mais donc pour avec sans dans sur sous chez "
    "the a an and or but for with without in on at to from please thanks tomorrow "
    "é à ç où être avoir faire dire pouvoir aller voir savoir vouloir venir devoir"
).split()
# Zipf-like weights: a few words are in most messages, most words are rare.
_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(_WORDS))))
SEARCH_QUERIES = (
    "dossier",
    "réunion",
    "reunion",
    "REUNION",
    "audience tribunal",
    "ordonnance",
    "radiographie",
    "prud",
    "notaire succession",
    "expert",
    "hearing",
    "allergy",
    "huissier",
    "confirmer rendez",
    "facture honoraires",
    "mutuelle",
    "custody",
    "plaidoirie",
    "greffe",
    "settlement notary",
)


def message_text(rng: random.Random, n: int, size: int | None = None) -> str:
    """A plausible bilingual message; `size` pads it to that many UTF-8 bytes."""
    count = rng.randint(6, 30)
    text = " ".join(rng.choices(_WORDS, cum_weights=_WEIGHTS, k=count)) + f" n°{n}"
    if size is None:
        return text
    while len(text.encode()) < size:
        text += " " + " ".join(rng.choices(_WORDS, cum_weights=_WEIGHTS, k=20))
    return text.encode()[:size].decode("utf-8", "ignore")


def make_record(key: SigningKey, n: int, conv: str, text: str, at: int) -> Record:
    """A signed record, built without the parser (its cost is the peer layer's, not ours)."""
    direction = "out" if n % 3 else "in"
    fields: dict[str, Any] = {
        "v": 1,
        "kind": "message",
        "id": f"m-{n}",
        "conv": conv,
        "dir": direction,
        "from": "Maître Durand" if direction == "out" else "M. Martin",
        "at": at,
        "text": text,
    }
    raw, sig = sign_record(key, fields)
    return Record(
        raw,
        sig,
        "message",
        f"m-{n}",
        conv,
        "",
        direction,
        fields["from"],
        at,
        text,
        None,
        None,
        None,
    )


def make_records(
    key: SigningKey,
    start: int,
    count: int,
    *,
    size: int | None = None,
    conversations: int = 200,
    seed: int = 1,
) -> list[Record]:
    rng = random.Random(seed * 1_000_003 + start)
    return [
        make_record(
            key,
            n,
            f"conv-{n % conversations}",
            message_text(rng, n, size),
            1_700_000_000_000 + n * 1000,
        )
        for n in range(start, start + count)
    ]


# -- measuring ------------------------------------------------------------------


def percentile(samples: Sequence[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def io_counters() -> dict[str, int]:
    """This process's I/O: wchar = bytes handed to write(), write_bytes = sent to the disk."""
    fields: dict[str, int] = {}
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = int(value)
    except (OSError, ValueError):
        pass
    return fields


def written_bytes() -> int:
    """Bytes this process has handed to write() so far (/proc/self/io wchar)."""
    return io_counters().get("wchar", 0)


def peak_rss_mib() -> float:
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0: writing 5 to clear_refs) so a later peak is this phase's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# -- ingest -----------------------------------------------------------------------


def ingest_ceiling(work: Path, count: int, batch: int = 500) -> float:
    """Direct batched inserts of store_record ops: msgs/s (the archive's own ceiling)."""
    archive = open_archive(fresh_dir(work / "ingest-ceiling"))
    try:
        ((device, owner, key),) = add_phones(archive, 1)
        records = make_records(key, 0, count, size=MESSAGE_BYTES)
        start = time.perf_counter()
        for i in range(0, count, batch):
            archive.write_batch(
                [writes.store_record(r, device, owner) for r in records[i : i + batch]]
            )
        return count / (time.perf_counter() - start)
    finally:
        archive.close()
        shutil.rmtree(work / "ingest-ceiling", ignore_errors=True)


@dataclass(frozen=True)
class CommitterRun:
    msgs_per_s: float
    p50_ms: float
    p99_ms: float
    batches: int
    peak_rss_mib: float
    idle_rss_mib: float


async def _produce(
    committer: GroupCommitter,
    records: list[Record],
    device: int,
    owner: str,
    window: int,
    latencies: list[float],
    rate: float | None,
) -> None:
    """One phone: up to `window` pushes in flight, each timed from submit to ack."""
    slots = asyncio.Semaphore(window)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def push(record: Record) -> None:
        t0 = time.perf_counter()
        try:
            await committer.submit(writes.store_record(record, device, owner))
            latencies.append((time.perf_counter() - t0) * 1000)
        finally:
            slots.release()

    tasks = []
    for i, record in enumerate(records):
        if rate is not None:
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(push(record)))
    await asyncio.gather(*tasks)


def committer_ingest(
    work: Path, count: int, *, producers: int = 10, window: int = 64, rate: float | None = None
) -> CommitterRun:
    """`producers` phones push `count` 1 KiB messages through the GroupCommitter.

    rate=None pushes as fast as acks allow; otherwise the total offered rate in msgs/s.
    """
    path = fresh_dir(work / "ingest-committer")
    archive = open_archive(path)
    committer = GroupCommitter(archive)
    try:
        phones = add_phones(archive, producers)
        per_phone = count // producers
        batches = [
            make_records(key, i * per_phone, per_phone, size=MESSAGE_BYTES, seed=i)
            for i, (_, _, key) in enumerate(phones)
        ]
        committer.start()
        idle = rss_mib()
        reset_peak_rss()
        latencies: list[float] = []

        async def run() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    _produce(
                        committer,
                        recs,
                        device,
                        owner,
                        window,
                        latencies,
                        None if rate is None else rate / producers,
                    )
                    for recs, (device, owner, _) in zip(batches, phones, strict=True)
                )
            )
            return time.perf_counter() - t0

        elapsed = asyncio.run(run())
        peak = peak_rss_mib()
        return CommitterRun(
            len(latencies) / elapsed,
            percentile(latencies, 50),
            percentile(latencies, 99),
            committer.batches,
            peak,
            idle,
        )
    finally:
        committer.stop()
        archive.close()
        shutil.rmtree(path, ignore_errors=True)


# -- the big archives ----------------------------------------------------------------
# Built and cached by bench_corpus (imported when called: it builds on this module).


def cached_archive(work: Path, size: int, log: Callable[[str], None] = print) -> Path:
    """The data dir's parent of an archive holding `size` messages (bench_corpus)."""
    import bench_corpus

    return bench_corpus.cached_archive(work, size, log)


def plain_copy(archive_dir: Path) -> Path:
    """An unencrypted copy of the same database, cached beside it (bench_corpus)."""
    import bench_corpus

    return bench_corpus.plain_copy(archive_dir)


# -- search -------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchRun:
    p50_ms: float
    p95_ms: float
    plain_p50_ms: float
    plain_p95_ms: float
    queries: int


def _time_queries(conn: sqlite3.Connection, rounds: int, budget_s: float) -> list[float]:
    """`rounds` passes over SEARCH_QUERIES, fewer if `budget_s` runs out (one at least)."""
    for query in SEARCH_QUERIES:  # warm the page cache: we measure queries, not the disk
        search_messages(conn, query, limit=50)
    samples = []
    deadline = time.perf_counter() + budget_s
    for _ in range(rounds):
        for query in SEARCH_QUERIES:
            t0 = time.perf_counter()
            search_messages(conn, query, limit=50)
            samples.append((time.perf_counter() - t0) * 1000)
        if time.perf_counter() > deadline:
            break
    return samples


def search_latency(archive_dir: Path, rounds: int, budget_s: float = 90.0) -> SearchRun:
    """search_messages (FTS MATCH + joins, newest 50) on SQLCipher vs a plain sqlite3 copy."""
    plain_path = plain_copy(archive_dir)
    archive = open_archive(archive_dir / "data")
    reader = archive.reader()
    plain = sqlite3.connect(plain_path)
    try:
        encrypted = _time_queries(reader, rounds, budget_s)
        clear = _time_queries(plain, len(encrypted) // len(SEARCH_QUERIES), budget_s)
    finally:
        plain.close()
        reader.close()
        archive.close()
    return SearchRun(
        percentile(encrypted, 50),
        percentile(encrypted, 95),
        percentile(clear, 50),
        percentile(clear, 95),
        len(encrypted),
    )


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
    archive = open_archive(data_dir)
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
            BENCH_ENTROPY,
            BENCH_PASSPHRASE,
            opslimit=argon2id.OPSLIMIT_MIN,
            memlimit=argon2id.MEMLIMIT_MIN,
        )
        keystore.add_keyfile_slot(BENCH_ENTROPY, keyfile)
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
    plain_ms = statistics.median(_plain_open(plain_copy(archive_dir)) for _ in range(5))
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
    path = fresh_dir(work / "soak")
    archive = open_archive(path)
    committer = GroupCommitter(archive)
    committer.start()
    phones = add_phones(archive, producers)
    rss_start, fds_start = rss_mib(), open_fds()
    cycles = messages = 0
    verify_ok = True
    deadline = time.perf_counter() + seconds
    per_phone = per_cycle // producers
    try:
        while time.perf_counter() < deadline:

            async def push_all(cycle: int = cycles) -> None:
                await asyncio.gather(
                    *(
                        _produce(
                            committer,
                            make_records(
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
                for query in SEARCH_QUERIES:
                    search_messages(reader, query, limit=50)
                report = verify_archive(
                    reader, archive.blobs, bytes(archive.signing_key.verify_key)
                )
                verify_ok = verify_ok and report.ok
            finally:
                reader.close()
            cycles += 1
        return SoakRun(
            seconds, cycles, messages, rss_start, rss_mib(), fds_start, open_fds(), verify_ok
        )
    finally:
        committer.stop()
        archive.close()
        shutil.rmtree(path, ignore_errors=True)


# -- export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRun:
    seconds: float
    zip_floor_seconds: float
    verify_seconds: float
    bundle_mib: float
    records: int
    verified: bool


def _zip_floor(archive: Archive, conversation_id: int, out: Path) -> float:
    """The same records' signed bytes into a zip with a SHA-256 each: the streaming floor."""
    import zipfile

    reader = archive.reader()
    t0 = time.perf_counter()
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
    elapsed = time.perf_counter() - t0
    reader.close()
    return elapsed


def export_time(work: Path, count: int) -> ExportRun:
    """office.export.export_bundle of one conversation of `count` messages, then its verifier."""
    from strongroom.office.export import ExportRequest, ExportScope, export_bundle
    from strongroom.office.verify_export import verify_bundle

    path = fresh_dir(work / "export")
    archive = open_archive(path / "data")
    try:
        ((device, owner, key),) = add_phones(archive, 1)
        records = make_records(key, 0, count, conversations=1)
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
        result = export_bundle(archive, request, out)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = verify_bundle(out)
        verify_seconds = time.perf_counter() - t0
        floor = _zip_floor(archive, int(conversation_id), path / "floor.zip")
        size = out.stat().st_size / 1024 / 1024
        return ExportRun(seconds, floor, verify_seconds, size, result.records, report.ok)
    finally:
        archive.close()
        shutil.rmtree(path, ignore_errors=True)
