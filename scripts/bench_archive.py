"""Archive-level benchmarks for `make bench`: ingest, and what every bench module
shares (the benchmark identity, the records and their texts, the measuring helpers,
the cached corpora). The search and export rows are in bench_reads.py, start to
ready and the soak in bench_service.py.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.record import Record, sign_record
from strongroom.archive.store import Archive
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


def io_counters(*, thread: bool = False) -> dict[str, int]:
    """This process's I/O (/proc/self/io; with `thread`, the calling thread's alone,
    /proc/thread-self/io): wchar = bytes handed to write().

    write_bytes is NOT what reached the disk: the kernel adds a whole page-cache folio
    each time one goes from clean to dirty, and since Linux 6.16 ext4 caches files in
    large folios (up to MiBs: a copy or the growth rows' rollback writes 4 MiB blocks).
    One 4 KiB pwrite into such a file then counts as 16-256 KiB while 4 KiB reaches
    the device. For bytes sent to the disk use device_written_bytes()."""
    fields: dict[str, int] = {}
    try:
        io = Path("/proc/thread-self/io" if thread else "/proc/self/io")
        for line in io.read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = int(value)
    except (OSError, ValueError):
        pass
    return fields


def device_written_bytes(path: Path) -> int | None:
    """Bytes the block device holding `path` has written so far (its sectors written,
    /sys/dev/block/MAJ:MIN/stat), or None without one (tmpfs, overlay). Whole device:
    every process's writes and the file system's journal count, so on a shared machine
    a window's difference is an upper bound on what that window sent to the disk."""
    dev = os.stat(path).st_dev
    stat = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat")
    try:
        return int(stat.read_text().split()[6]) * 512  # sectors are 512 bytes here
    except (OSError, ValueError, IndexError):
        return None


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
    times: list[tuple[float, float]] | None = None,
) -> None:
    """One phone: up to `window` pushes in flight, each timed from submit to ack (in
    ms into `latencies`; with `times`, also its perf_counter instants, to line acks up
    with what ran meanwhile)."""
    slots = asyncio.Semaphore(window)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def push(record: Record) -> None:
        t0 = time.perf_counter()
        try:
            await committer.submit(writes.store_record(record, device, owner))
            t1 = time.perf_counter()
            latencies.append((t1 - t0) * 1000)
            if times is not None:
                times.append((t0, t1))
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
