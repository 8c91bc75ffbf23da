"""The ingest row's load-generator phones (scripts/bench_phones.py): every push they
count was acked by the box after its durable commit, the box stored exactly those
records, as from the reference client (same hello caps: it sends them consistency
proofs), and a frame that is not an ack of theirs (an error) stops the run instead of
being counted. Run in a child, as `make bench` runs the scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import asyncio, json, sys, time
from pathlib import Path
sys.path.insert(0, "scripts")
sys.path.insert(0, "app")
import aiohttp
from bench_peer_harness import Box, _message
from bench_phones import BenchPhone, ack_id
from strongroom.client import DeviceState, PhoneClient
from strongroom.config import Limits
from strongroom.peer.frames import (
    ErrorCode, encode_frame, error_frame, record_ack,
)
from strongroom.peer.handshake import HandshakeKind
from strongroom.peer.head_chain import HeadChain
from strongroom.proof.sth import SignedTreeHead

def ack_ids():
    head = SignedTreeHead(5, bytes(32), 1_700_000_000_000, bytes(64))
    found = []
    for request_id in (0, 23, 24, 65536, 2**53 - 1):
        ack = record_ack(request_id, kind="record", ref=bytes(32), log_index=4, at=7,
                         tree_head=head, proof=[bytes(32)] * 3, duplicate=False)
        proved = HeadChain._with_proof(ack, 3, [bytes(32)] * 2)
        found.append([ack_id(encode_frame(ack)), ack_id(encode_frame(proved))])
    error = encode_frame(error_frame(ErrorCode.REJECTED, "no", 24))
    cut = encode_frame(ack)[:-1]
    return found, [ack_id(error), ack_id(cut)]

async def run(work):
    async with Box(work / "box", Limits(max_connections_per_device=4)) as box, \
            aiohttp.ClientSession() as http:
        url = box.url + "/peer"
        client = PhoneClient(DeviceState.generate("p", "owner-p"), http=http)
        await client.pair_button(url, box.keys.fingerprint)
        await client.close()
        before = box.archive.conn.execute("SELECT count(*) FROM records").fetchone()[0]
        pushed = []
        def next_record():
            signed = client.sign(_message(len(pushed)))
            pushed.append(signed)
            return signed
        phone = await BenchPhone.connect(http, url, client)
        # The box's session for it, as for the reference client: proofs and bundles.
        (conn,) = [c for c in box.service._connections if c.session.kind is HandshakeKind.IK]
        session = {"consistency": conn.session.heads.wanted, "bundles": conn.session.peer_bundles}
        saturated, paced = [], []
        await phone.run(next_record, time.perf_counter() + 1.0, None, saturated)
        await phone.run(next_record, time.perf_counter() + 0.5, 0.02, paced)
        rows = box.archive.conn.execute(
            "SELECT body, signature FROM records WHERE id > ?", (before,)).fetchall()
        stored = sorted((bytes(b), bytes(s)) for b, s in rows)
        # A push the box refuses (its signature is not the device's): an error frame.
        refused = None
        try:
            raw, sig = pushed[0]
            await phone.run(lambda: (raw, bytes(64)), time.perf_counter() + 0.2, 0.5, [])
        except RuntimeError as exc:
            refused = str(exc)
        await phone.close()
        return {
            "window": phone.window, "session": session,
            "saturated": len(saturated), "paced": len(paced), "pushed": len(pushed),
            "stored_equal": stored == sorted(pushed), "refused": refused,
        }

if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(Path(tmp)))
    result["ack_ids"], result["not_acks"] = ack_ids()
    print(json.dumps(result))
"""


def test_bench_phones_count_only_acked_records_the_box_stored() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Each ack names its push by id, with or without a consistency proof after the head.
    assert result["ack_ids"] == [[i, i] for i in (0, 23, 24, 65536, 2**53 - 1)]
    assert result["not_acks"] == [None, None]  # an error frame, a cut ack
    assert result["window"] == 64  # the box's window, from its hello
    assert result["session"] == {"consistency": True, "bundles": True}
    # Saturated (64 in flight), then paced: every push was acked, and the box holds
    # exactly the records pushed, bytes and signatures as signed.
    assert result["saturated"] > 64
    assert 0 < result["paced"] <= 26  # one each 20 ms for 0.5 s, the pace kept (not more)
    assert result["saturated"] + result["paced"] == result["pushed"]
    assert result["stored_equal"]
    # A push the box refuses is not counted: the run stops, naming the error.
    assert result["refused"] is not None and "rejected" in result["refused"]
