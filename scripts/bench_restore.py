"""A new phone's restore by the reference client, over Noise on loopback (issue #20, item 3).

Separate processes, so that nothing of the filling phone stays in the restoring
one's memory and the box and the phone can each be given a core:
- the box runs in this process (bench_peer.Box);
- an old phone, in a fresh process, pushes `count` signed 1 KiB messages and
  uploads `blobs` attachments (with their attachment records);
- a new phone of the same owner, in another fresh process, pairs and restores
  the records with `PhoneClient.restore_to` (every signature and inclusion
  proof checked, streamed to a HistoryStore on disk), then runs it again with
  `attachments_dir` (the resume path: one history page, then every blob
  downloaded and its SHA-256 checked, written to disk).

The new phone's restore runs twice, each time by another new phone: first with
the box and the phone sharing the machine's cores, then with the box's process
pinned to one core and the phone's to another (bench_cores.py). A box and a phone
are two machines: the pinned run is the one the attachments' aim is judged on,
the shared one is printed beside it. On a machine with fewer than two usable
cores the pinned row says so instead of a figure.

Ceilings, measured in the restoring process (on its core when pinned; after its
restore, and for attachments also before it), on the same records and bytes, in
one thread:
- records: the phone's crypto alone, the device's Ed25519 signature and the
  proof's hashing (leaf hash + one node hash per level);
- attachments: the phone's crypto chain alone, the Noise open
  (ChaCha20-Poly1305) of each piece and SHA-256, timed before the restore and
  after it (the mean of the two: a shared machine's load moves in between).
The phone's peak RSS (VmHWM of the restoring process) shows memory stays flat:
it is the same for 2,000 and 100,000 records, and for 4 MiB and 1 GiB of blobs.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import bench_cores
import bench_peer
from nacl import bindings
from nacl.signing import VerifyKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.client import DeviceState, HistoryStore, PhoneClient
from strongroom.config import Limits
from strongroom.peer.frames import BLOB_PIECE_BYTES
from strongroom.proof.merkle import leaf_hash, node_hash

OWNER = "dr.restore"
WAVE = 64  # pushes in flight while the old phone fills the archive


def _attachment(n: int, sha256: bytes, size: int) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "attachment",
        "id": f"bench-a{n}-{os.urandom(4).hex()}",
        "conv": f"conv-{n % 50}",
        "dir": "out",
        "from": "Bench",
        "ref": f"bench-{n}",
        "at": 1_800_000_000_000 + n,
        "blob": {
            "sha256": sha256,
            "size": size,
            "name": f"scan-{n}.pdf",
            "mime": "application/pdf",
        },
    }


async def _fill(url: str, fingerprint: str, count: int, blobs: int, blob_bytes: int) -> str:
    """Old phone (fresh process): push `count` messages and `blobs` attachments; its key."""
    async with aiohttp.ClientSession() as http:
        old = PhoneClient(DeviceState.generate("old phone", OWNER), http=http)
        await old.pair_button(url, fingerprint)
        for start in range(0, count, WAVE):
            wave = range(start, min(count, start + WAVE))
            await old.push_many_signed([old.sign(bench_peer._message(n)) for n in wave])
        for n in range(blobs):
            data = os.urandom(blob_bytes)
            await old.upload_attachment(data)
            await old.push(_attachment(n, hashlib.sha256(data).digest(), len(data)))
        await old.close()
        return bytes(old.state.signing_key.verify_key).hex()


class _Rss:
    """Samples this process's RSS every 50 ms on a thread (the restore's memory curve)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(bench_peer._rss_mib())

    def __enter__(self) -> _Rss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _restore_new(
    url: str, fingerprint: str, work: str, device_key: str, blob_total: int, core: int | None
) -> dict[str, Any]:
    """New phone (fresh process, on `core` alone when given): restore records, then
    attachments; then the ceilings, on the same core (the attachments' chain timed before
    the restore as well as after it: the load of a shared machine moves between the two,
    and the ceiling is their mean)."""
    if core is not None:
        bench_cores.pin_process({core})
    cores = sorted(bench_cores.current_cores())
    chain_before = _blob_crypto(blob_total)
    store, files = Path(work) / "store", Path(work) / "files"
    async with aiohttp.ClientSession() as http:
        new = PhoneClient(DeviceState.generate("new phone", OWNER), http=http)
        await new.pair_button(url, fingerprint)
        rss_start = bench_peer._rss_mib()
        with _Rss() as rss:
            t0, cpu0 = time.perf_counter(), time.process_time()
            restored = await new.restore_to(store)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            t0, cpu0, blob_start = time.perf_counter(), time.process_time(), time.monotonic()
            sched0 = _schedstat()
            await new.restore_to(store, attachments_dir=files)
            blob_seconds, blob_cpu = time.perf_counter() - t0, time.process_time() - cpu0
            blob_end = time.monotonic()
            on_core, waiting = (b - a for a, b in zip(sched0, _schedstat(), strict=True))
        await new.close()
    blob_bytes = sum(p.stat().st_size for p in files.iterdir())
    crypto, crypto_cpu = _records_crypto(store, bytes.fromhex(device_key), restored)
    return {
        "restored": restored,
        "seconds": seconds,
        "cpu": cpu,
        "crypto": crypto,
        "crypto_cpu": crypto_cpu,
        "blob_bytes": blob_bytes,
        "blob_files": len(list(files.iterdir())),
        "blob_seconds": blob_seconds,
        "blob_cpu": blob_cpu,
        "blob_span": (blob_start, blob_end),  # CLOCK_MONOTONIC: the box reads it too
        # The phone's loop thread over the attachments: on a core, runnable but waiting
        # for one (the machine's other load), and the rest idle (waiting for the box).
        "blob_loop": (on_core / blob_seconds, waiting / blob_seconds),
        "blob_crypto": (chain_before, _blob_crypto(blob_bytes)),
        "rss_start": rss_start,
        "rss_max": max([rss_start, *rss.samples]),
        "peak_rss": bench_peer._peak_rss_mib(),
        "cores": cores,
    }


def _schedstat() -> tuple[float, float]:
    """Seconds this thread has run on a core and waited runnable for one (Linux)."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
        on_core, waiting = stat.read().split()[:2]
    return int(on_core) / 1e9, int(waiting) / 1e9


def _records_crypto(store: Path, device_key: bytes, count: int) -> tuple[float, float]:
    """Seconds (wall, CPU) of the phone's crypto alone on the restored records, read
    back from disk 2,000 at a time (reads not timed; memory stays that of a page)."""
    key = VerifyKey(device_key)
    depth = max(1, math.ceil(math.log2(count + 4)))
    records = HistoryStore(store).items()
    seconds = cpu = 0.0
    while batch := list(itertools.islice(records, 2000)):
        t0, cpu0 = time.perf_counter(), time.process_time()
        for item in batch:
            key.verify(RECORD_SIGNING_CONTEXT + item.record, item.sig)
            node = leaf_hash(hashlib.sha256(item.record).digest())
            for _ in range(depth):
                node = node_hash(node, node)
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - cpu0
    return seconds, cpu


def _blob_crypto(size: int) -> tuple[float, float]:
    """Seconds (wall, CPU) of the phone's chain alone for `size` bytes: Noise open +
    SHA-256 per piece."""
    key, nonce = os.urandom(32), bytes(12)
    piece = os.urandom(BLOB_PIECE_BYTES)
    sealed = bindings.crypto_aead_chacha20poly1305_ietf_encrypt(piece, b"", nonce, key)
    digest = hashlib.sha256()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(max(1, size // BLOB_PIECE_BYTES)):
        digest.update(bindings.crypto_aead_chacha20poly1305_ietf_decrypt(sealed, b"", nonce, key))
    return time.perf_counter() - t0, time.process_time() - cpu0


class _CpuClock:
    """This process's CPU time sampled every 20 ms against CLOCK_MONOTONIC, so the box's
    CPU over the phone's attachment phase (timed in the phone's process) can be read."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), time.process_time()))
            if self._stop.wait(0.02):
                self.samples.append((time.monotonic(), time.process_time()))
                return

    def __enter__(self) -> _CpuClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> float:
        """CPU seconds used from `start` to `end` (nearest samples inside the span)."""
        inside = [cpu for at, cpu in self.samples if start <= at <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0


async def _restore(
    work: Path, count: int, blobs: int, blob_bytes: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Fill the box once, then restore it twice with two new phones: box and phone
    sharing the machine's cores, then each pinned to a core of its own (None when the
    machine has fewer than two usable cores)."""
    async with bench_peer.Box(work / "restore-box", Limits(max_connections_per_device=4)) as box:
        url = box.url + "/peer"
        fp = box.keys.fingerprint
        key = await bench_peer._phones(_fill, url, fp, count, blobs, blob_bytes)

        async def run(name: str, core: int | None) -> dict[str, Any]:
            cpu0 = time.process_time()
            with _CpuClock() as clock:
                result: dict[str, Any] = await bench_peer._phones(
                    _restore_new, url, fp, str(work / name), key, blobs * blob_bytes, core
                )
            result["box_cpu"] = time.process_time() - cpu0
            result["box_blob_cpu"] = clock.between(*result["blob_span"])
            result["box_cores"] = sorted(bench_cores.current_cores())
            return result

        shared = await run("phone-shared", None)
        cores = bench_cores.two_cores()
        if cores is None:
            return shared, None
        box_core, phone_core = cores
        with bench_cores.pinned(box_core):
            return shared, await run("phone-pinned", phone_core)


def bench_restore(count: int, work_dir: Path, blob_mib: int = 4) -> list[dict[str, Any]]:
    """Rows for a restore of `count` messages and `blob_mib` MiB of attachments (16 MiB
    each, or 8 pieces of blob_mib/8 below 128 MiB): box and phone sharing the cores,
    then each pinned to its own core."""
    blobs = max(8, blob_mib // 16)
    blob_bytes = (blob_mib << 20) // blobs
    with bench_peer._scratch(work_dir) as tmp:
        shared, pinned = asyncio.run(_restore(Path(tmp), count, blobs, blob_bytes))
    records = _records_row(count, shared, pinned)
    return [records, _blob_row(shared, "box and phone sharing the machine's cores")] + (
        [_blob_row(pinned, "box and phone each pinned to its own core")]
        if pinned is not None
        else [_no_second_core()]
    )


def _memory(run: dict[str, Any]) -> str:
    return (
        f"phone RSS {run['rss_start']:.0f} MiB before, at most {run['rss_max']:.0f} MiB during"
        f" (VmHWM {run['peak_rss']:.0f} MiB)"
    )


def _where(run: dict[str, Any]) -> str:
    cores = "cores {}".format
    return (
        f"box on {cores(run['box_cores'])}, phone on {cores(run['cores'])}, load average"
        f" {os.getloadavg()[0]:.1f} after"
    )


def _records_row(count: int, run: dict[str, Any], pinned: dict[str, Any] | None) -> dict[str, Any]:
    rate = run["restored"] / run["seconds"]
    ceiling = run["restored"] / run["crypto"]
    aside = ""
    if pinned is not None:
        pinned_rate = pinned["restored"] / pinned["seconds"]
        pinned_ratio = pinned_rate / (pinned["restored"] / pinned["crypto"])
        aside = (
            f"; box and phone each pinned to its own core: {pinned_rate:,.0f} msgs/s,"
            f" {pinned_ratio:.2f} of the ceiling on the phone's core"
        )
    return {
        "name": f"new-phone restore by the reference client over Noise, {count:,} messages",
        "value": rate,
        "unit": "msgs/s",
        "ceiling": ceiling,
        "ceiling_what": "the phone's crypto alone: Ed25519 + proof hashing, one thread",
        "aim": ">= 0.5 of ceiling; 1M messages < 5 min",
        "note": f"{run['restored']:,} restored, every signature and proof checked, streamed"
        f" to disk; phone CPU {run['cpu'] / max(1, run['restored']) * 1e6:.0f} µs/record"
        f" ({run['cpu'] / run['crypto_cpu']:.2f}x the CPU of its crypto alone; on a shared"
        " machine the rest of the gap to the ceiling is waiting for a core),"
        f" box CPU (attachments included) {run['box_cpu']:.1f} s; box and phone in two"
        f" processes sharing the cores; 1M at this rate: {1_000_000 / rate / 60:.1f} min"
        f" (extrapolated){aside}; {_memory(run)}",
    }


def _blob_row(run: dict[str, Any], how: str) -> dict[str, Any]:
    mib = run["blob_bytes"] / 2**20
    # Mean of the chain timed before and after the restore, per byte.
    (before_s, before_cpu), (after_s, after_cpu) = run["blob_crypto"]
    chain_seconds = (before_s + after_s) / 2
    chain_cpu = (before_cpu + after_cpu) / 2
    busy, waiting = run["blob_loop"]
    return {
        "name": f"new-phone restore of attachments over Noise, {how}, {run['blob_files']}"
        f" files, {mib:,.0f} MiB",
        "value": mib / run["blob_seconds"],
        "unit": "MiB/s",
        "ceiling": mib / chain_seconds,
        "ceiling_what": "the phone's chain alone on the phone's core: Noise open"
        " (ChaCha20-Poly1305) + SHA-256 (mean of a run before and one after the restore)",
        "aim": ">= 0.5 of ceiling (judged pinned); phone memory flat",
        "note": f"each file's SHA-256 checked, written to disk, fsynced once; CPU per MiB:"
        f" phone {run['blob_cpu'] / mib * 1e3:.2f} ms, box"
        f" {run['box_blob_cpu'] / mib * 1e3:.2f} ms (blob decrypt + Noise seal + sends),"
        f" the chain alone {chain_cpu / mib * 1e3:.2f} ms; the phone's loop thread on a core"
        f" {busy:.0%} of the time, waiting for one {waiting:.0%}, idle (waiting for the box)"
        f" {max(0.0, 1 - busy - waiting):.0%}; {_where(run)}; {_memory(run)}",
    }


def _no_second_core() -> dict[str, Any]:
    return {
        "name": "new-phone restore of attachments over Noise, box and phone each pinned to"
        " its own core",
        "value": None,
        "unit": "MiB/s",
        "ceiling": None,
        "ceiling_what": "",
        "aim": ">= 0.5 of ceiling; phone memory flat",
        "note": f"not measured: this machine has {len(bench_cores.usable_cores())} usable"
        " core(s), a box and a phone on cores of their own need two",
    }
