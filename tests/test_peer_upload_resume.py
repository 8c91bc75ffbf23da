"""Attachment uploads that stop half-way and go on (protocol.md §9), on loopback:
real sockets, real Noise, a real box run as runtime.py runs it (aiohttp cancels a
handler whose socket is gone, which after a clean close happens at once)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from peer_helpers import RunningBox, paired_phone, running_box
from protocol_doc import rule
from strongroom.client import Ack, BoxError, ConnectionLost, PhoneClient
from strongroom.client.link import Link
from strongroom.peer.frames import BLOB_PIECE_BYTES, Frame
from strongroom.peer.uploads import EVICT_WAIT_S

box = pytest.fixture(running_box)

SIZE = 3 << 20


def _attachment(tmp_path: Path, name: str = "scan.bin") -> tuple[Path, bytes]:
    path = tmp_path / name
    path.write_bytes(os.urandom(SIZE))
    return path, hashlib.sha256(path.read_bytes()).digest()


async def _start_upload(link: Link, data: bytes, pieces: int) -> None:
    """blob_begin, then `pieces` chunks, then a ping: once its pong is back, the box
    has taken every chunk."""
    sha = hashlib.sha256(data).digest()
    status = await link.request("blob_begin", {"sha256": sha, "size": len(data)})
    assert status.type == "blob_status"
    offset = status.body["offset"]
    for _ in range(pieces):
        piece = data[offset : offset + BLOB_PIECE_BYTES]
        await link.send(Frame("blob_chunk", 0, {"offset": offset, "data": piece}))
        offset += len(piece)
    await link.request("ping", {})


async def _upload_timed(phone: PhoneClient, source: Path | bytes) -> tuple[Ack, int, float]:
    """Upload; the offset it resumed from and how long the box took to answer."""
    starts: list[int] = []
    began = time.monotonic()
    answered: list[float] = []

    def note(offset: int, total: int) -> None:
        if not starts:
            starts.append(offset)
            answered.append(time.monotonic() - began)

    ack = await phone.upload_attachment(source, progress=note)
    return ack, starts[0] if starts else -1, answered[0] if answered else 0.0


def _settled(box: RunningBox) -> None:
    assert box.count("SELECT count(*) FROM blobs") == 1
    assert box.count("SELECT count(*) FROM uploads") == 0
    assert box.service.active_uploads == {}


async def _until_unclaimed(box: RunningBox) -> None:
    for _ in range(100):
        if not box.service.active_uploads:
            return
        await asyncio.sleep(0.02)


async def test_a_clean_close_mid_upload_resumes_on_a_new_connection(
    box: RunningBox, tmp_path: Path
) -> None:
    rule("however it ends (a dropped link, a clean WebSocket close, a box restart)")
    path, sha = _attachment(tmp_path)
    phone = await paired_phone(box, "claire")
    link = phone._require_link()
    closing: list[asyncio.Future[bool]] = []

    def close_halfway(offset: int, total: int) -> None:
        if offset >= total // 2 and not closing:
            closing.append(asyncio.ensure_future(link.ws.close()))  # close frame 1000

    with pytest.raises(ConnectionLost):
        await phone.upload_attachment(path, progress=close_halfway)
    await closing[0]
    await _until_unclaimed(box)
    await phone.connect(box.url)
    # The broken box answered `busy` after a 5 s stall here, until restarted.
    ack, start, waited = await _upload_timed(phone, path)
    assert ack.ref == sha
    assert 0 < start < SIZE and waited < EVICT_WAIT_S / 2
    _settled(box)
    await phone.close()


async def test_a_newer_connection_takes_over_while_the_old_one_is_open(
    box: RunningBox, tmp_path: Path
) -> None:
    rule("from the same device, the newer connection takes over")
    path, sha = _attachment(tmp_path)
    old = await paired_phone(box, "claire")
    old_link = old._require_link()
    await _start_upload(old_link, path.read_bytes(), pieces=2)
    assert list(box.service.active_uploads) == [sha]
    # The same phone (same keys) on a second connection, the first one still open.
    new = PhoneClient(old.state)
    await new.connect(box.url)
    ack, start, waited = await _upload_timed(new, path)
    assert ack.ref == sha
    assert start > 0 and waited < EVICT_WAIT_S / 2  # resumed from the old connection's bytes
    await asyncio.wait_for(old_link.closed.wait(), 5)
    assert old_link.ws.close_code == 1001
    _settled(box)
    await new.close()
    await old.close()


async def test_many_devices_uploading_one_blob_end_with_one_copy(
    box: RunningBox, tmp_path: Path
) -> None:
    rule("from another device, error `busy`")
    path, sha = _attachment(tmp_path)
    # One device stops cleanly half-way: another device resumes its bytes at once.
    first = await paired_phone(box, "claire", "first")
    await _start_upload(first._require_link(), path.read_bytes(), pieces=20)
    await first._require_link().ws.close()
    await _until_unclaimed(box)
    phones = [await paired_phone(box, "claire", f"phone {n}") for n in range(4)]
    outcomes = await asyncio.gather(
        *(_upload_timed(p, path) for p in phones), return_exceptions=True
    )
    done = [o for o in outcomes if isinstance(o, tuple)]
    refused = [o for o in outcomes if isinstance(o, BoxError)]
    assert len(done) + len(refused) == len(phones), outcomes
    assert all(e.code == "busy" for e in refused)
    assert done and all(ack.ref == sha for ack, _, _ in done)
    assert any(0 < start < SIZE for _, start, _ in done)  # the first device's bytes kept
    assert all(waited < EVICT_WAIT_S / 2 for _, _, waited in done)
    # Once the winner is done, the others get the blob's ack at once.
    for n, outcome in enumerate(outcomes):
        if isinstance(outcome, BoxError):
            ack = await phones[n].upload_attachment(path)
            assert ack.ref == sha and ack.duplicate
    _settled(box)
    for phone in [first, *phones]:
        await phone.close()


async def test_an_upload_resumes_after_a_box_restart(box: RunningBox, tmp_path: Path) -> None:
    rule("a box restart), reconnect and send `blob_begin` again for the same hash")
    path, sha = _attachment(tmp_path)
    phone = await paired_phone(box, "claire")
    await _start_upload(phone._require_link(), path.read_bytes(), pieces=20)
    await box.restart()
    await phone.connect(box.url)
    ack, start, _ = await _upload_timed(phone, path)
    assert ack.ref == sha and 0 < start < SIZE
    _settled(box)
    await phone.close()


async def test_a_clean_close_resumes_on_the_box_as_it_runs(tmp_path: Path) -> None:
    # The whole BoxRuntime (its aiohttp server, handler cancellation and all), not the
    # peer service alone: where the stuck claim was seen.
    from e2e_helpers import Clock, pair_by_qr, prepare_data_dir
    from e2e_helpers import start_box as start_runtime

    config = await prepare_data_dir(tmp_path / "box")
    running = await start_runtime(config, clock=Clock())
    try:
        phone, _ = await pair_by_qr(running, "Pixel", "claire")
        path, sha = _attachment(tmp_path)
        await _start_upload(phone._require_link(), path.read_bytes(), pieces=20)
        await phone._require_link().ws.close()  # close frame 1000, mid-upload
        await phone.connect(running.peer_url)
        ack, start, waited = await _upload_timed(phone, path)
        assert ack.ref == sha and 0 < start < SIZE and waited < EVICT_WAIT_S / 2
        await phone.close()
    finally:
        await running.stop()
