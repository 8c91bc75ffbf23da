"""Encrypted attachment blobs: streamed in pieces, resumable, never in the clear."""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.archive.blobs import (
    CHUNK_BYTES,
    SEALED_CHUNK_BYTES,
    BlobLocation,
    BlobStore,
    chunk_count,
)
from strongroom.archive.errors import BlobError

MARKER = b"CONFIDENTIEL-PATIENT-DUPONT-"


def pattern(size: int, seed: int = 0) -> bytes:
    """Recognisable plaintext: a marker repeated, salted with a little randomness."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += MARKER + rng.randbytes(4)
    return bytes(out[:size])


def upload(store: BlobStore, data: bytes, pieces: list[int]) -> BlobLocation:
    location = store.new_location()
    sha = hashlib.sha256(data).digest()
    up = store.start_upload(location, len(data), sha)
    position = 0
    for piece in pieces:
        up.write(data[position : position + piece])
        position += piece
    up.write(data[position:])
    up.finish()
    store.complete(up, location)
    return location


def read_all(store: BlobStore, location: BlobLocation, size: int) -> bytes:
    return b"".join(store.read_chunks(location, size))


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_no_plaintext(root: Path) -> None:
    for path in files_under(root):
        content = path.read_bytes()
        assert MARKER not in content, f"plaintext in {path}"
        assert MARKER[:12] not in content, f"plaintext fragment in {path}"


@settings(max_examples=40, deadline=None)
@given(
    size=st.sampled_from([0, 1, 1000, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1])
    | st.integers(0, 3 * CHUNK_BYTES + 10),
    cuts=st.lists(st.integers(0, 3 * CHUNK_BYTES + 10), max_size=8),
    seed=st.integers(0, 2**16),
)
def test_any_split_into_pieces_reads_back_identical(size: int, cuts: list[int], seed: int) -> None:
    data = pattern(size, seed)
    bounds = sorted({c for c in cuts if c <= size})
    pieces = [b - a for a, b in zip([0, *bounds], bounds, strict=False)]
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp) / "blobs", os.urandom(32))
        location = upload(store, data, pieces)
        assert read_all(store, location, size) == data
        final = store.path_for(location.file_name)
        assert final.stat().st_size == size + chunk_count(size) * (SEALED_CHUNK_BYTES - CHUNK_BYTES)
        assert list(store.partial_dir.iterdir()) == []
        store.verify(location, size, hashlib.sha256(data).digest())
        assert_no_plaintext(Path(tmp))


@pytest.mark.parametrize("size", [0, CHUNK_BYTES, 3 * CHUNK_BYTES])
def test_empty_and_exact_multiples(tmp_path: Path, size: int) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(size)
    location = upload(store, data, [size])
    chunks = list(store.read_chunks(location, size))
    assert b"".join(chunks) == data
    assert len(chunks) == max(1, size // CHUNK_BYTES)  # no empty trailing chunk
    # The empty blob is one authenticated empty chunk, so it still proves its key.
    path = store.path_for(location.file_name)
    assert path.stat().st_size == size + len(chunks) * (SEALED_CHUNK_BYTES - CHUNK_BYTES)


def test_wrong_hash_leaves_nothing_in_place(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(2 * CHUNK_BYTES + 5)
    location = store.new_location()
    up = store.start_upload(location, len(data), hashlib.sha256(b"something else").digest())
    up.write(data)
    with pytest.raises(BlobError, match="SHA-256"):
        up.finish()
    assert files_under(tmp_path) == []
    with pytest.raises(BlobError, match="missing"):
        read_all(store, location, len(data))


def test_too_many_bytes_and_early_finish_are_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(100)
    up = store.start_upload(store.new_location(), 100, hashlib.sha256(data).digest())
    up.write(data[:60])
    with pytest.raises(BlobError, match="incomplete"):
        up.finish()
    with pytest.raises(BlobError, match="announced"):
        up.write(data[60:] + b"x")
    up.write(data[60:])
    up.finish()


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(1, 4 * CHUNK_BYTES),
    stop_fraction=st.floats(0, 1),
    flush=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_resume_after_abort_continues_from_the_durable_offset(
    size: int, stop_fraction: float, flush: bool, seed: int
) -> None:
    data = pattern(size, seed)
    sha = hashlib.sha256(data).digest()
    stop = int(size * stop_fraction)
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp) / "blobs", os.urandom(32))
        location = store.new_location()
        first = store.start_upload(location, size, sha)
        first.write(data[:stop])
        if flush:
            first.flush()
        durable = first.durable_offset
        first.abort()  # abort flushes: every whole sealed chunk is kept
        assert_no_plaintext(Path(tmp))  # the partial file is sealed chunks only

        second = store.start_upload(location, size, sha)
        # Whole chunks survive, except the final chunk, which is always redone.
        kept = min(stop // CHUNK_BYTES, chunk_count(size) - 1) * CHUNK_BYTES
        assert second.offset == second.durable_offset == kept
        assert durable == (kept if flush else 0)
        second.write(data[second.offset :])
        second.finish()
        store.complete(second, location)
        assert read_all(store, location, size) == data
        store.verify(location, size, sha)


def test_resume_after_a_torn_chunk_and_a_damaged_chunk(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(4 * CHUNK_BYTES + 99)
    sha = hashlib.sha256(data).digest()
    location = store.new_location()
    up = store.start_upload(location, len(data), sha)
    up.write(data[: 3 * CHUNK_BYTES + 10])
    up.abort()
    partial = store.partial_path(location.file_name)
    # A crash tore the file mid-write: half a sealed chunk at the end.
    with partial.open("ab") as handle:
        handle.write(os.urandom(SEALED_CHUNK_BYTES // 2))
    assert store.start_upload(location, len(data), sha).offset == 3 * CHUNK_BYTES
    # A chunk damaged on disk: resume keeps only the chunks before it.
    raw = bytearray(partial.read_bytes())
    raw[SEALED_CHUNK_BYTES + 5] ^= 1
    partial.write_bytes(bytes(raw))
    resumed = store.start_upload(location, len(data), sha)
    assert resumed.offset == CHUNK_BYTES
    resumed.write(data[CHUNK_BYTES:])
    resumed.finish()
    store.complete(resumed, location)
    assert read_all(store, location, len(data)) == data


def test_resume_with_another_key_or_salt_starts_over(tmp_path: Path) -> None:
    blob_key = os.urandom(32)
    store = BlobStore(tmp_path / "blobs", blob_key)
    data = pattern(3 * CHUNK_BYTES)
    sha = hashlib.sha256(data).digest()
    location = store.new_location()
    up = store.start_upload(location, len(data), sha)
    up.write(data[: 2 * CHUNK_BYTES])
    up.abort()
    wrong_salt = BlobLocation(location.file_name, os.urandom(16))
    assert store.start_upload(wrong_salt, len(data), sha).offset == 0


def test_files_are_named_at_random_and_do_not_reveal_the_hash(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(10)
    a = upload(store, data, [10])
    b = upload(store, data, [10])
    assert a.file_name != b.file_name and a.salt != b.salt
    sha_hex = hashlib.sha256(data).hexdigest()
    assert all(sha_hex[:16] not in str(p) for p in files_under(tmp_path))
    # Same content, different salts: the ciphertexts differ.
    assert store.path_for(a.file_name).read_bytes() != store.path_for(b.file_name).read_bytes()


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABCDEF" * 5 + "AB", "x", "0" * 31 + "/"])
def test_file_names_from_the_database_cannot_escape_the_store(tmp_path: Path, name: str) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    with pytest.raises(BlobError, match="invalid blob file name"):
        store.path_for(name)


def test_durable_offset_counts_only_flushed_chunks(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs", os.urandom(32))
    data = pattern(3 * CHUNK_BYTES)
    up = store.start_upload(store.new_location(), len(data), hashlib.sha256(data).digest())
    up.write(data[: 2 * CHUNK_BYTES + 7])
    assert up.offset == 2 * CHUNK_BYTES + 7
    assert up.durable_offset == 0  # sealed but maybe still in a buffer: not promised yet
    up.flush()
    assert up.durable_offset == 2 * CHUNK_BYTES
