"""Power loss: the box is a real process, three phones push, and the box is SIGKILLed at random.

After every kill the data dir is reopened as the box would at boot, and:
- it verifies (nothing half-written is visible);
- every record a phone saw acknowledged is there, at the log index of its ack;
- the log is an append-only extension of the last signed tree head each phone
  saw (a consistency proof built from the archive verifies);
then the box restarts on the same data dir, the phones reconnect (Noise IK),
their outboxes are pushed again, and at the end every record ever pushed is
stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from pathlib import Path

from fault_helpers import BoxProcess, message, open_archive, pair_phone, verify_data_dir
from strongroom.archive.blobs import SEALED_CHUNK_BYTES
from strongroom.client import PhoneClient
from strongroom.client.link import LinkError
from strongroom.client.proofs import Ack, record_id
from strongroom.proof.merkle import verify_consistency
from strongroom.proof.sth import SignedTreeHead, verify_tree_head

SEEDS = (11, 23, 37, 41)
PHONES = 3


class PushingPhone:
    """A phone pushing batches until its link dies; remembers what the box acknowledged."""

    def __init__(self, phone: PhoneClient, rng: random.Random, label: str) -> None:
        self.phone = phone
        self.rng = rng
        self.label = label
        self.acked: dict[bytes, Ack] = {}
        self.pushed: set[bytes] = set()
        self.last_head: SignedTreeHead | None = None
        self.n = 0

    def note(self, ack: Ack) -> None:
        self.acked[ack.ref] = ack
        if self.last_head is None or ack.tree_head.tree_size > self.last_head.tree_size:
            self.last_head = ack.tree_head

    async def push_until_cut(self) -> None:
        with contextlib.suppress(LinkError, ConnectionError, asyncio.CancelledError):
            while True:
                batch = []
                for _ in range(self.rng.randint(1, 24)):
                    self.n += 1
                    text = f"{self.label} dossier {self.n} " + "z" * self.rng.randrange(600)
                    batch.append(self.phone.sign(message(self.n, text, conv=self.label)))
                self.pushed.update(record_id(raw) for raw, _ in batch)
                # Pushed one by one concurrently: acks land while others are still in flight.
                results = await asyncio.gather(
                    *(self.phone.push_signed(raw, sig) for raw, sig in batch),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, Ack):
                        self.note(result)
                if any(isinstance(r, BaseException) for r in results):
                    return


def attachment(message_id: str, sha256: bytes, size: int) -> dict[str, object]:
    fields: dict[str, object] = dict(message(2, ""))
    del fields["text"]
    fields.update(
        kind="attachment",
        ref=message_id,
        blob={"sha256": sha256, "size": size, "name": "scan.pdf", "mime": "application/pdf"},
    )
    return fields


def check_after_power_cut(data_dir: Path, pushers: list[PushingPhone]) -> None:
    report = verify_data_dir(data_dir)
    assert report.ok, report.problems
    archive = open_archive(data_dir)
    try:
        stored = {
            bytes(rid): int(index)
            for rid, index in archive.conn.execute("SELECT record_id, log_index FROM records")
        }
        head = archive.latest_tree_head()
        assert head is not None and verify_tree_head(head, bytes(archive.signing_key.verify_key))
        for pusher in pushers:
            for ref, ack in pusher.acked.items():
                assert stored.get(ref) == ack.log_index, (
                    f"{pusher.label}: acked record at log {ack.log_index} lost by the power cut"
                )
            seen = pusher.last_head
            if seen is None:
                continue
            assert seen.tree_size <= head.tree_size, "the log shrank below a head a phone saw"
            proof = archive.consistency_proof(seen.tree_size, head.tree_size)
            assert verify_consistency(
                seen.tree_size, head.tree_size, seen.root_hash, head.root_hash, proof
            ), f"{pusher.label}: the log after restart is not an extension of the head it saw"
    finally:
        archive.close()


async def test_sigkill_during_a_push_storm_loses_nothing_acked_and_stores_each_record_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "box"
    box = await BoxProcess(data_dir).start()
    phones = [await pair_phone(box, f"owner-{i}", f"phone-{i}") for i in range(PHONES)]
    pushers = [
        PushingPhone(phone, random.Random(i), f"phone-{i}") for i, phone in enumerate(phones)
    ]
    total_acked_before_cuts = 0
    try:
        for seed in SEEDS:
            rng = random.Random(seed)
            tasks = [asyncio.create_task(p.push_until_cut()) for p in pushers]
            await asyncio.sleep(rng.uniform(0.15, 0.9))  # a random moment in the storm
            await box.kill()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
            check_after_power_cut(data_dir, pushers)
            total_acked_before_cuts = sum(len(p.acked) for p in pushers)
            box = await BoxProcess(data_dir).start()
            for pusher in pushers:
                # IK reconnect to the restarted box: the outbox is pushed again.
                with contextlib.suppress(LinkError):
                    await pusher.phone.close()
                await pusher.phone.connect(box.peer_url)
        assert total_acked_before_cuts > 0, "nothing was acked before the cuts: proves nothing"
        for pusher in pushers:
            assert pusher.phone.outbox == [], f"{pusher.label}: records left unacknowledged"
    finally:
        for phone in phones:
            await phone.close()
        await box.stop()

    report = verify_data_dir(data_dir)
    assert report.ok, report.problems
    archive = open_archive(data_dir)
    try:
        rows = archive.conn.execute("SELECT record_id, count(*) FROM records GROUP BY record_id")
        stored = {bytes(rid): int(n) for rid, n in rows}
    finally:
        archive.close()
    pushed = set().union(*(p.pushed for p in pushers))
    missing = pushed - set(stored)
    assert not missing, f"{len(missing)} pushed records never stored after the re-push"
    assert all(n == 1 for n in stored.values())
    assert set(stored) == pushed, "the archive holds records nobody pushed"


async def _partial_on_disk(data_dir: Path, at_least: int) -> None:
    partial = data_dir / "blobs" / "partial"
    for _ in range(1500):  # polled: the box is another process, no event to wait on
        if any(p.stat().st_size >= at_least for p in partial.glob("*") if p.is_file()):
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the box sealed nothing to disk")


async def test_a_blob_upload_cut_by_sigkill_resumes_after_restart_and_verifies(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "box"
    data = random.Random(5).randbytes(4 * 1024 * 1024 + 321)
    sha = hashlib.sha256(data).digest()
    box = await BoxProcess(data_dir).start()
    phone = await pair_phone(box, "claire")
    try:
        sent = 0
        cut = asyncio.Event()

        def progress(offset: int, _size: int) -> None:
            nonlocal sent
            sent = offset
            if offset > len(data) * 3 // 4:
                cut.set()

        upload = asyncio.create_task(phone.upload_attachment(data, progress=progress))
        await asyncio.wait_for(cut.wait(), 15)
        # What the phone has sent may still sit in loopback socket buffers: kill only
        # once the box has sealed a few chunks to disk, so there is something to resume.
        await asyncio.wait_for(_partial_on_disk(data_dir, 4 * SEALED_CHUNK_BYTES), 15)
        await box.kill()
        with contextlib.suppress(LinkError, ConnectionError):
            await asyncio.wait_for(upload, 15)
        assert not upload.done() or upload.exception() is not None or upload.cancelled(), (
            "the upload finished before the cut: the test proves nothing"
        )
        report = verify_data_dir(data_dir)
        assert report.ok, report.problems

        box = await BoxProcess(data_dir).start()
        await phone.close()
        await phone.connect(box.peer_url)
        resumed_from: list[int] = []

        def first_offset(offset: int, _size: int) -> None:
            if not resumed_from:
                resumed_from.append(offset)

        ack = await phone.upload_attachment(data, progress=first_offset)
        assert ack.ref == sha
        assert 0 < resumed_from[0] <= sent, "the upload started over instead of resuming"
        note = message(1, "scan attached")
        await phone.push(note)
        await phone.push(attachment(note["id"], sha, len(data)))
        assert await phone.download_blob(sha) == data
    finally:
        await phone.close()
        await box.stop()
    report = verify_data_dir(data_dir)
    assert report.ok, report.problems
    assert report.blobs == 1
