"""A new phone's restore downloads the history's attachments several at a time
(client/restore_files.py, protocol.md §9): each file whole and hash-checked, a blob
named twice fetched once, a damaged blob stopping the restore with nothing torn
left under a final name. Real box on loopback, real Noise, real SQLCipher."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from peer_helpers import RunningBox, attachment_record, paired_phone, running_box
from strongroom import malloc_tuning
from strongroom.client import BoxError, PhoneClient
from strongroom.client.restore_files import WINDOW
from strongroom.peer.blob_stream import BlobStreams
from strongroom.peer.frames import Frame

box = pytest.fixture(running_box)


async def _upload(box: RunningBox, sizes: list[int], twice: int | None = None) -> list[bytes]:
    """An old phone of claire uploads one attachment per size (records pushed, one more
    record naming blob `twice` again); returns the blobs' bytes."""
    old = await paired_phone(box, "claire", "ancien")
    blobs = [os.urandom(size) for size in sizes]
    for n, data in enumerate(blobs):
        ack = await old.upload_attachment(data)
        await old.push(attachment_record(f"m-{n}", ack.ref, len(data)))
    if twice is not None:
        ack = await old.upload_attachment(blobs[twice])  # held already: acked at once
        await old.push(attachment_record("m-again", ack.ref, len(blobs[twice])))
    await old.close()
    return blobs


def _watch_streams(phone: PhoneClient) -> dict[str, Any]:
    """Count the phone's blob_get streams: how many at once at most, and per blob."""
    link = phone._require_link()
    seen: dict[str, Any] = {"now": 0, "most": 0, "per_blob": {}}
    stream = link.stream

    async def counted(kind: str, body: Mapping[str, Any]) -> AsyncGenerator[Frame, None]:
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        sha = bytes(body["sha256"])
        seen["per_blob"][sha] = seen["per_blob"].get(sha, 0) + 1
        try:
            async for frame in stream(kind, body):
                yield frame
        finally:
            seen["now"] -= 1

    link.stream = counted  # type: ignore[method-assign, assignment]
    return seen


async def test_attachments_are_downloaded_several_at_once_each_whole_and_once(
    box: RunningBox, tmp_path: Path
) -> None:
    blobs = await _upload(box, [1_000_000 + n for n in range(7)], twice=2)
    new = await paired_phone(box, "claire", "nouveau")
    seen = _watch_streams(new)
    files = tmp_path / "pieces jointes"
    await new.restore_to(tmp_path / "store", attachments_dir=files)
    await new.close()

    wanted = {hashlib.sha256(data).hexdigest(): data for data in blobs}
    assert sorted(p.name for p in files.iterdir()) == sorted(wanted)  # no .partial left
    for path in files.iterdir():
        assert path.read_bytes() == wanted[path.name]
    # Several files in flight, never more than the window; the blob named twice once.
    assert 1 < seen["most"] <= WINDOW
    assert sorted(seen["per_blob"].values()) == [1] * len(blobs)


async def test_a_damaged_blob_stops_the_restore_and_leaves_no_torn_file(
    box: RunningBox, tmp_path: Path
) -> None:
    sizes = [3_000_000] + [1_000_000 + n for n in range(5)]
    blobs = await _upload(box, sizes)
    stored = [p for p in (box.data_dir / "blobs").rglob("*") if p.is_file()]
    [damaged] = [p for p in stored if p.stat().st_size > 2_500_000]  # the 3 MB one
    with damaged.open("r+b") as handle:  # one flipped byte in its middle
        handle.seek(damaged.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))

    new = await paired_phone(box, "claire", "nouveau")
    files = tmp_path / "files"
    with pytest.raises(BoxError):
        await new.restore_to(tmp_path / "store", attachments_dir=files)
    # Nothing of the restore still runs, and every file under its final name is whole.
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if "download" in repr(t.get_coro())]
    wanted = {hashlib.sha256(data).hexdigest(): data for data in blobs}
    final = [p for p in files.iterdir() if not p.name.endswith(".partial")]
    assert hashlib.sha256(blobs[0]).hexdigest() not in {p.name for p in final}
    for path in final:
        assert path.read_bytes() == wanted[path.name]
    await new.close()


async def test_a_phone_asking_many_blobs_at_once_gets_them_all_four_streams_at_a_time(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each stream holds ~2 MiB of the box: 12 blob_gets at once (a phone may have 64
    requests in flight) run four at a time on the box, and every one still arrives."""
    blobs = await _upload(box, [2_000_000 + n for n in range(12)])
    running = {"now": 0, "most": 0}
    stream_blob = BlobStreams._stream_batches  # inside the streams' semaphore

    async def counted(self: BlobStreams, *args: Any) -> None:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        try:
            await stream_blob(self, *args)
        finally:
            running["now"] -= 1

    monkeypatch.setattr(BlobStreams, "_stream_batches", counted)
    new = await paired_phone(box, "claire", "nouveau")
    link = new._require_link()

    async def fetch(data: bytes) -> bytes:
        got = bytearray()
        body = {"sha256": hashlib.sha256(data).digest(), "offset": 0}
        async with contextlib.aclosing(link.stream("blob_get", body)) as frames:
            async for frame in frames:
                got += frame.body["data"]
                if frame.body["end"]:
                    break
        return bytes(got)

    fetched = await asyncio.gather(*(fetch(data) for data in blobs))
    await new.close()
    assert fetched == blobs
    assert running["most"] == 4


async def test_a_download_cancelled_while_its_file_is_fsynced_waits_for_the_worker(
    box: RunningBox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review L4: the last batch of a file is written and fsynced on a worker thread. A
    download cancelled then (the user leaves the restore) must not close the file under
    that worker: the cancellation waits for it, nothing appears under the final name,
    no error escapes, and the next try finds every byte in the partial file."""
    [data] = await _upload(box, [3_000_000])
    sha256 = hashlib.sha256(data).digest()
    dest = tmp_path / "scan.pdf"
    partial = tmp_path / "scan.pdf.partial"
    in_fsync, disk_done = threading.Event(), threading.Event()
    fsynced: list[str | OSError] = []
    real_fsync = os.fsync

    def slow_disk(fd: int) -> None:  # the hardware edge: a card slow to fsync this file
        if os.readlink(f"/proc/self/fd/{fd}") != str(partial):
            return real_fsync(fd)
        in_fsync.set()
        disk_done.wait(10)
        try:
            real_fsync(fd)
            fsynced.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError as exc:  # the descriptor was closed (or is another file's now)
            fsynced.append(exc)
            raise

    monkeypatch.setattr(os, "fsync", slow_disk)
    new = await paired_phone(box, "claire", "nouveau")
    caplog.set_level(logging.ERROR)
    download = asyncio.ensure_future(new.download_blob(sha256, dest))
    assert await asyncio.to_thread(in_fsync.wait, 10)
    download.cancel()
    # The old code was done here at once, its file closed under the worker's fsync.
    finished, _ = await asyncio.wait([download], timeout=0.5)
    assert not finished
    disk_done.set()
    with pytest.raises(asyncio.CancelledError):
        await download
    assert fsynced == [str(partial)]
    assert not dest.exists()
    assert partial.stat().st_size == len(data)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # A later try finds the whole file in its partial copy and only checks it.
    assert await new.download_blob(sha256, dest) == b""
    assert dest.read_bytes() == data and not partial.exists()
    await new.close()


async def test_the_downloads_run_with_freed_memory_kept_and_hand_it_back_after(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # glibc trimming the phone's heap between pieces cost ~40-50 page faults per MiB
    # (docs/benchmarks.md): every stream runs inside
    # malloc_tuning.streaming(), whose end hands the memory back.
    await _upload(box, [300_000, 400_000, 500_000])
    new = await paired_phone(box, "claire", "nouveau")
    phone_streaming = 0
    during: list[int] = []
    streaming = malloc_tuning.streaming

    @contextlib.contextmanager
    def watched() -> Iterator[None]:
        nonlocal phone_streaming
        # The box's streams use it too (same process here): count the phone's only.
        phone = any(f.function == "download_all" for f in inspect.stack()[2:4])
        phone_streaming += phone
        try:
            with streaming():
                yield
        finally:
            phone_streaming -= phone

    monkeypatch.setattr(malloc_tuning, "streaming", watched)
    link = new._require_link()
    stream = link.stream

    async def noted(kind: str, body: Mapping[str, Any]) -> AsyncGenerator[Frame, None]:
        during.append(phone_streaming)
        async for frame in stream(kind, body):
            yield frame

    link.stream = noted  # type: ignore[method-assign, assignment]
    await new.restore_to(tmp_path / "store", attachments_dir=tmp_path / "files")
    await new.close()
    assert during == [1, 1, 1]  # every download inside it
    assert phone_streaming == 0  # and left once they are done
