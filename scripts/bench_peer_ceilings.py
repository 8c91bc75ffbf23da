"""The ceilings of the peer benchmarks (bench_peer.py): what the box could do without
the network, Noise framing or Python around the same work, measured in the same run.

- `ingest_ceiling`: direct batched inserts of signed 1 KiB records into the same
  SQLCipher schema (no network, no Noise, no group committer).
- `crypto_mib_s`: the crypto every uploaded byte needs, alone in one thread.
- `disk_write_mib_s`: plain writes plus one fsync where the box keeps its blobs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench_peer_harness import _message

from strongroom.archive import writes
from strongroom.archive.record import parse_record, sign_record
from strongroom.archive.store import Archive
from strongroom.client import DeviceState
from strongroom.identity import derive_box_keys
from strongroom.peer.frames import BLOB_PIECE_BYTES


def ingest_ceiling(data_dir: Path, count: int) -> float:
    """Direct batched inserts of signed 1 KiB records into the same schema: msgs/s."""
    keys = derive_box_keys(os.urandom(32))
    archive = Archive.open(data_dir, keys.archive_key, keys.blob_key, keys.signing_key)
    try:
        phone = DeviceState.generate("ceiling", "owner")
        device_id = archive.write(
            writes.add_device(
                writes.NewDevice(
                    bytes(phone.signing_key.verify_key),
                    phone.noise_public,
                    "ceiling",
                    "owner",
                    "staff",
                    "test",
                )
            )
        )
        records = [
            parse_record(*sign_record(phone.signing_key, _message(n)), max_blob_size=0)
            for n in range(count)
        ]
        start = time.perf_counter()
        for i in range(0, count, 512):
            batch = records[i : i + 512]
            archive.write_batch([writes.store_record(r, device_id, "owner") for r in batch])
        return count / (time.perf_counter() - start)
    finally:
        archive.close()


def crypto_mib_s(size: int) -> float:
    """The crypto every uploaded byte needs, alone in one thread: the phone's SHA-256 and
    Noise seal (ChaCha20-Poly1305), the box's Noise open, SHA-256 check and blob seal
    (XChaCha20-Poly1305 per 64 KiB chunk). No copies, framing, sockets or disk."""
    import hashlib

    from nacl import bindings

    from strongroom.archive.blobs import CHUNK_BYTES

    block = os.urandom(1 << 20)
    pieces = [block[i : i + BLOB_PIECE_BYTES] for i in range(0, len(block), BLOB_PIECE_BYTES)]
    chunks = [block[i : i + CHUNK_BYTES] for i in range(0, len(block), CHUNK_BYTES)]
    key, noise_nonce, blob_nonce = os.urandom(32), bytes(12), bytes(24)
    phone_hash, box_hash = hashlib.sha256(), hashlib.sha256()
    start = time.perf_counter()
    for _ in range(max(1, size >> 20)):
        phone_hash.update(block)
        for piece in pieces:
            sealed = bindings.crypto_aead_chacha20poly1305_ietf_encrypt(
                piece, b"", noise_nonce, key
            )
            box_hash.update(
                bindings.crypto_aead_chacha20poly1305_ietf_decrypt(sealed, b"", noise_nonce, key)
            )
        for chunk in chunks:
            bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(chunk, b"", blob_nonce, key)
    return max(1, size >> 20) / (time.perf_counter() - start)


def disk_write_mib_s(directory: Path, size: int) -> float:
    """Plain buffered writes of `size` bytes plus one fsync, where the box keeps its blobs."""
    piece = os.urandom(BLOB_PIECE_BYTES)
    path = directory / "disk-ceiling"
    start = time.perf_counter()
    with path.open("wb") as handle:
        for _ in range(0, size, len(piece)):
            handle.write(piece)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return size / 2**20 / elapsed
