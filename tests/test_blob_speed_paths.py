"""The fast paths of attachments: sealing apart from writing, batched uploads, downloads
resumed at an offset, and a phone that buffers only a few frames of a download."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer_helpers import RunningBox, attachment_record, message, paired_phone, running_box
from strongroom.archive.blobs import (
    CHUNK_BYTES,
    SEALED_CHUNK_BYTES,
    BlobLocation,
    BlobStore,
    BlobUpload,
)
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.errors import BlobError
from strongroom.archive.readers import ReaderPool
from strongroom.archive.store import Archive
from strongroom.client import PhoneClient, ProofError
from strongroom.client.stream_buffer import STREAM_FRAMES, StreamBuffer
from strongroom.peer import uploads
from strongroom.peer.actions import UploadFailed, UploadOpened
from strongroom.peer.frames import BLOB_PIECE_BYTES, ErrorCode

box = pytest.fixture(running_box)


def stored(store: BlobStore, data: bytes) -> BlobLocation:
    location = store.new_location()
    upload = store.start_upload(location, len(data), hashlib.sha256(data).digest())
    upload.write(data)
    upload.finish()
    store.complete(upload, location)
    return location


def flip_byte(path: Path, position: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[position] ^= 1
    path.write_bytes(bytes(raw))


# -- reading from an offset ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES])
    | st.integers(0, 3 * CHUNK_BYTES + 10),
    fraction=st.floats(0, 1),
)
def test_reading_from_any_offset_gives_exactly_the_rest(size: int, fraction: float) -> None:
    data = os.urandom(size)
    offset = int(size * fraction)
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp), os.urandom(32))
        location = stored(store, data)
        assert b"".join(store.read_chunks(location, size, offset)) == data[offset:]
        batches = list(store.read_batches(location, size, offset, chunks=2))
        assert all(1 <= len(batch) <= 2 for batch in batches)
        assert b"".join(b"".join(batch) for batch in batches) == data[offset:]


def test_a_resumed_read_decrypts_only_from_the_chunk_holding_its_offset(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, os.urandom(32))
    data = os.urandom(4 * CHUNK_BYTES + 123)
    location = stored(store, data)
    # Damage the first chunk: a read from the start fails, a resumed one never touches it.
    flip_byte(store.path_for(location.file_name), 10)
    with pytest.raises(BlobError, match="chunk 0"):
        b"".join(store.read_chunks(location, len(data)))
    offset = 2 * CHUNK_BYTES + 7
    assert b"".join(store.read_chunks(location, len(data), offset)) == data[offset:]
    # The chunk holding the offset is authenticated like every other one.
    flip_byte(store.path_for(location.file_name), 2 * SEALED_CHUNK_BYTES + 3)
    with pytest.raises(BlobError, match="chunk 2"):
        b"".join(store.read_chunks(location, len(data), offset))


def test_a_resumed_read_still_catches_a_cut_or_extended_file(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, os.urandom(32))
    data = os.urandom(3 * CHUNK_BYTES)
    location = stored(store, data)
    path = store.path_for(location.file_name)
    whole = path.read_bytes()
    path.write_bytes(whole + b"x")
    with pytest.raises(BlobError, match="trailing"):
        b"".join(store.read_chunks(location, len(data), len(data)))
    # Cut exactly at a chunk boundary: only the missing "last chunk" seal tells.
    path.write_bytes(whole[: 2 * SEALED_CHUNK_BYTES])
    with pytest.raises(BlobError, match="truncated"):
        b"".join(store.read_chunks(location, len(data), CHUNK_BYTES + 1))


def test_an_offset_outside_the_blob_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, os.urandom(32))
    location = stored(store, b"abc")
    for offset in (-1, 4):
        with pytest.raises(ValueError, match="outside"):
            store.read_chunks(location, 3, offset)


# -- sealing apart from writing --------------------------------------------------------------


def test_chunks_sealed_in_one_thread_and_written_in_another_read_back(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, os.urandom(32))
    data = os.urandom(5 * CHUNK_BYTES + 999)
    location = store.new_location()
    upload = store.start_upload(location, len(data), hashlib.sha256(data).digest())
    with ThreadPoolExecutor(1) as disk:
        for start in range(0, len(data), BLOB_PIECE_BYTES):
            sealed = upload.seal(data[start : start + BLOB_PIECE_BYTES])
            disk.submit(upload.append, sealed).result()
    upload.finish()
    store.complete(upload, location)
    assert b"".join(store.read_chunks(location, len(data))) == data


def test_chunks_sealed_but_never_written_are_not_resumed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path, os.urandom(32))
    data = os.urandom(4 * CHUNK_BYTES)
    sha = hashlib.sha256(data).digest()
    location = store.new_location()
    upload = store.start_upload(location, len(data), sha)
    sealed = upload.seal(data[: 3 * CHUNK_BYTES + 5])
    assert len(sealed) == 3
    upload.append(sealed[:1])
    assert upload.durable_offset == 0  # written is not durable: only flush() promises
    assert upload.seal(data[3 * CHUNK_BYTES + 5 :]) == []  # the final chunk waits for finish
    with pytest.raises(BlobError, match="appended"):
        upload.finish()
    upload.abort()
    resumed = store.start_upload(location, len(data), sha)
    assert resumed.offset == resumed.durable_offset == CHUNK_BYTES
    resumed.write(data[CHUNK_BYTES:])
    resumed.finish()
    store.complete(resumed, location)
    assert b"".join(store.read_chunks(location, len(data))) == data


# -- the box's upload driver -----------------------------------------------------------------


@pytest.fixture
async def driver_parts(
    archive: Archive,
) -> AsyncIterator[tuple[Archive, GroupCommitter, ReaderPool]]:
    committer = GroupCommitter(archive)
    committer.start()
    readers = ReaderPool(archive, 1)
    try:
        yield archive, committer, readers
    finally:
        readers.close()
        committer.stop()


def new_driver(parts: tuple[Archive, GroupCommitter, ReaderPool]) -> uploads.UploadDriver:
    archive, committer, readers = parts

    async def close() -> None:
        return None

    return uploads.UploadDriver(
        archive, committer, readers.run, {}, device=lambda: 1, close_connection=close
    )


def pieces_of(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), BLOB_PIECE_BYTES):
        yield data[start : start + BLOB_PIECE_BYTES]


async def test_a_slow_disk_holds_back_the_reader_instead_of_buffering(
    driver_parts: tuple[Archive, GroupCommitter, ReaderPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(8 << 20)
    driver = new_driver(driver_parts)
    assert isinstance(await driver.open(hashlib.sha256(data).digest(), len(data)), UploadOpened)
    disk_free = threading.Event()
    seal_and_append = uploads._seal_and_append

    def stuck_disk(upload: BlobUpload, pieces: list[bytes]) -> None:
        disk_free.wait(10)
        seal_and_append(upload, pieces)

    monkeypatch.setattr(uploads, "_seal_and_append", stuck_disk)
    taken = 0

    async def feed() -> None:
        nonlocal taken
        for piece in pieces_of(data):
            assert await driver.write(piece) is None
            taken += len(piece)

    feeding = asyncio.create_task(feed())
    for _ in range(200):  # let the feeder run until it has to wait for the disk
        await asyncio.sleep(0)
    # One batch is at the disk, the next one is full: the phone's frames wait in TCP.
    assert not feeding.done()
    assert taken <= 2 * uploads.BATCH_BYTES + BLOB_PIECE_BYTES
    disk_free.set()
    await feeding
    location = await driver.finish()
    assert isinstance(location, BlobLocation)
    archive = driver_parts[0]
    assert b"".join(archive.blobs.read_chunks(location, len(data))) == data


async def test_a_failed_disk_write_is_reported_and_the_upload_resumes_later(
    driver_parts: tuple[Archive, GroupCommitter, ReaderPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(3 << 20)
    sha = hashlib.sha256(data).digest()
    driver = new_driver(driver_parts)
    assert isinstance(await driver.open(sha, len(data)), UploadOpened)
    writes = 0
    append = BlobUpload.append

    def full_disk_on_the_second_batch(upload: BlobUpload, sealed: list[bytes]) -> None:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise OSError(28, "No space left on device")
        append(upload, sealed)

    monkeypatch.setattr(BlobUpload, "append", full_disk_on_the_second_batch)
    failure = None
    for piece in pieces_of(data):
        failure = await driver.write(piece)
        if failure is not None:
            break
    assert isinstance(failure, UploadFailed)
    assert failure.code is ErrorCode.UNAVAILABLE and "No space" in failure.message
    monkeypatch.setattr(BlobUpload, "append", append)
    # The first batch reached the disk and is kept: a new upload resumes after it.
    again = new_driver(driver_parts)
    opened = await again.open(sha, len(data))
    assert isinstance(opened, UploadOpened)
    assert 0 < opened.offset < len(data) and opened.offset % CHUNK_BYTES == 0
    for start in range(opened.offset, len(data), BLOB_PIECE_BYTES):
        assert await again.write(data[start : start + BLOB_PIECE_BYTES]) is None
    assert isinstance(await again.finish(), BlobLocation)


# -- downloads through the box ---------------------------------------------------------------


async def _stored_attachment(box: RunningBox, size: int) -> tuple[PhoneClient, bytes, bytes]:
    phone = await paired_phone(box, "claire")
    data = os.urandom(size)
    ack = await phone.upload_attachment(data)
    note = message("scan attached")
    await phone.push(note)
    await phone.push(attachment_record(note["id"], ack.ref, size))
    return phone, ack.ref, data


async def test_a_download_resumed_at_an_offset_sends_exactly_the_rest(box: RunningBox) -> None:
    phone, sha, data = await _stored_attachment(box, 3 * CHUNK_BYTES + 4321)
    link = phone._require_link()
    for offset in (CHUNK_BYTES + 17, len(data), 0):
        received = bytearray()
        frames = link.stream("blob_get", {"sha256": sha, "offset": offset})
        async with contextlib.aclosing(frames):
            async for frame in frames:
                assert frame.body["offset"] == offset + len(received)
                received += frame.body["data"]
                if frame.body["end"]:
                    break
        assert bytes(received) == data[offset:]
    await phone.close()


async def test_the_phone_buffers_only_a_few_frames_of_a_download(box: RunningBox) -> None:
    phone, sha, data = await _stored_attachment(box, 4 << 20)
    link = phone._require_link()
    frames = link.stream("blob_get", {"sha256": sha, "offset": 0})
    async with contextlib.aclosing(frames):
        first = await anext(frames)
        (buffer,) = link._streams.values()
        for _ in range(1000):  # the box sends until the phone's buffer is full...
            if len(buffer) == STREAM_FRAMES:
                break
            await asyncio.sleep(0.01)
        for _ in range(20):
            await asyncio.sleep(0.01)
            assert len(buffer) == STREAM_FRAMES  # ...and then waits: no more is buffered
        received = bytearray(first.body["data"])
        async for frame in frames:
            received += frame.body["data"]
            if frame.body["end"]:
                break
    assert bytes(received) == data
    await phone.close()


async def test_leaving_a_download_early_keeps_the_link_usable(box: RunningBox) -> None:
    phone, sha, data = await _stored_attachment(box, 4 << 20)
    link = phone._require_link()
    frames = link.stream("blob_get", {"sha256": sha, "offset": 0})
    async with contextlib.aclosing(frames):
        await anext(frames)
        await asyncio.sleep(0.1)  # the box fills the phone's buffer meanwhile
    async with asyncio.timeout(10):
        reply = await link.request("ping", {})
    assert reply.type == "pong"
    assert await phone.download_blob(sha) == data
    await phone.close()


async def test_a_download_to_a_file_cut_off_midway_resumes_from_what_is_on_disk(
    box: RunningBox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, sha, data = await _stored_attachment(box, 4 << 20)
    dest = tmp_path / "scan.pdf"
    partial = tmp_path / "scan.pdf.partial"
    cut = asyncio.create_task(phone.download_blob(sha, dest))
    for _ in range(2000):  # wait until a few pieces are on disk
        if partial.exists() and partial.stat().st_size >= 3 * BLOB_PIECE_BYTES:
            break
        await asyncio.sleep(0.005)
    cut.cancel()  # the app is killed mid-download
    with contextlib.suppress(asyncio.CancelledError):
        await cut
    kept = partial.stat().st_size
    assert 0 < kept < len(data) and not dest.exists()

    link = phone._require_link()
    asked: list[int] = []
    real_stream = link.stream

    def spy(frame_type: str, body: dict[str, object]) -> object:
        asked.append(int(body["offset"]))  # type: ignore[call-overload]
        return real_stream(frame_type, body)

    monkeypatch.setattr(link, "stream", spy)
    assert await phone.download_blob(sha, dest) == b""
    assert asked == [kept]  # only the missing bytes were asked for
    assert dest.read_bytes() == data and not partial.exists()

    # A partial file that does not belong to this blob is detected by the hash and
    # removed, and the next attempt starts over.
    other = tmp_path / "other.bin"
    (tmp_path / "other.bin.partial").write_bytes(b"not the start of this attachment")
    with pytest.raises(ProofError):
        await phone.download_blob(sha, other)
    assert not (tmp_path / "other.bin.partial").exists() and not other.exists()
    await phone.download_blob(sha, other)
    assert other.read_bytes() == data
    # One longer than the blob: the box refuses the offset, the phone starts over.
    longer = tmp_path / "longer.bin"
    (tmp_path / "longer.bin.partial").write_bytes(bytes(len(data) + 1))
    await phone.download_blob(sha, longer)
    assert longer.read_bytes() == data
    await phone.close()


# -- the phone's stream buffer ---------------------------------------------------------------


async def test_a_full_stream_buffer_makes_the_writer_wait_until_an_item_is_taken() -> None:
    buffer: StreamBuffer[int] = StreamBuffer(2)
    await buffer.put(1)
    await buffer.put(2)
    third = asyncio.create_task(buffer.put(3))
    await asyncio.sleep(0.01)
    assert not third.done() and len(buffer) == 2
    assert await buffer.get() == 1
    await third
    buffer.end()
    assert [await buffer.get(), await buffer.get(), await buffer.get()] == [2, 3, None]


async def test_an_abandoned_stream_buffer_releases_its_writer_and_drops_items() -> None:
    buffer: StreamBuffer[int] = StreamBuffer(1)
    await buffer.put(1)
    waiting = asyncio.create_task(buffer.put(2))
    await asyncio.sleep(0.01)
    buffer.abandon()
    await asyncio.wait_for(waiting, 1)
    assert len(buffer) == 0
