"""A new phone's restore by the reference client, over Noise on loopback (issue #20, item 3).

The box runs in this process (bench_peer.Box); the phones run in a fresh child
process: an old phone pushes `count` signed 1 KiB messages, then a new phone of
the same owner pairs and restores them with `PhoneClient.restore_history`,
which checks every record's inclusion proof against the page's signed tree
head. The ceiling is the phone's crypto alone on the same records: the device's
Ed25519 signature and the proof's hashing (leaf hash + one node hash per level).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from pathlib import Path
from typing import Any

import aiohttp
import bench_peer
from nacl.signing import VerifyKey

from strongroom.archive.record import RECORD_SIGNING_CONTEXT
from strongroom.client import DeviceState, PhoneClient
from strongroom.config import Limits
from strongroom.proof.merkle import leaf_hash, node_hash

OWNER = "dr.restore"
WAVE = 64  # pushes in flight while the old phone fills the archive


async def _phones_restore(url: str, fingerprint: str, count: int) -> dict[str, Any]:
    """Child process: fill the archive from an old phone, restore it on a new one."""
    async with aiohttp.ClientSession() as http:
        old = PhoneClient(DeviceState.generate("old phone", OWNER), http=http)
        await old.pair_button(url, fingerprint)
        signed = [old.sign(bench_peer._message(n)) for n in range(count)]
        for start in range(0, count, WAVE):
            await old.push_many_signed(signed[start : start + WAVE])
        device_key = VerifyKey(bytes(old.state.signing_key.verify_key))
        await old.close()
        new = PhoneClient(DeviceState.generate("new phone", OWNER), http=http)
        await new.pair_button(url, fingerprint)
        t0, cpu0 = time.perf_counter(), time.process_time()
        items = await new.restore_history()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await new.close()
    depth = max(1, math.ceil(math.log2(count + 4)))
    t0 = time.perf_counter()
    for item in items:
        device_key.verify(RECORD_SIGNING_CONTEXT + item.record, item.sig)
        node = leaf_hash(hashlib.sha256(item.record).digest())
        for _ in range(depth):
            node = node_hash(node, node)
    crypto = time.perf_counter() - t0
    return {"restored": len(items), "seconds": seconds, "cpu": cpu, "crypto": crypto}


async def _restore(work: Path, count: int) -> dict[str, Any]:
    async with bench_peer.Box(work / "restore-box", Limits(max_connections_per_device=4)) as box:
        url = box.url + "/peer"
        result: dict[str, Any] = await bench_peer._phones(
            _phones_restore, url, box.keys.fingerprint, count
        )
    return result


def bench_restore(count: int, work_dir: Path) -> list[dict[str, Any]]:
    with bench_peer._scratch(work_dir) as tmp:
        run = asyncio.run(_restore(Path(tmp), count))
    rate = run["restored"] / run["seconds"]
    ceiling = run["restored"] / run["crypto"]
    return [
        {
            "name": f"new-phone restore by the reference client over Noise, {count:,} messages",
            "value": rate,
            "unit": "msgs/s",
            "ceiling": ceiling,
            "ceiling_what": "the phone's crypto alone: Ed25519 + proof hashing",
            "aim": ">= 0.5 of ceiling; 1M messages < 5 min",
            "note": f"{run['restored']:,} restored, proofs checked by the client; phone CPU "
            f"{run['cpu'] / max(1, run['restored']) * 1e6:.0f} µs/record; 1M at this rate: "
            f"{1_000_000 / rate / 60:.1f} min; attachments not included",
        }
    ]
