"""A writer process for the crash tests: it writes until it is SIGKILLed.

    python archive_crash_child.py DATA_DIR ARCHIVE_KEY BLOB_KEY SIGN_SEED MODE SEED

Keys are hex. MODE is `batch` (Archive.write_batch), `committer` (GroupCommitter
under asyncio), `kept` (the committer, killing itself after a COMMIT and before
that batch's head is kept, saying `K <tree size>` first) or `blob` (one resumable
upload). Every line it prints states something that has *returned* as durable,
and is flushed only after that:

    R <log index> <record id hex>   a record whose write call returned
    D <offset>                       blob bytes made durable by BlobUpload.flush()
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sys
from pathlib import Path

from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.blobs import CHUNK_BYTES
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive
from strongroom.proof.sth import SignedTreeHead

BLOB_MARKER = b"PLAINTEXT-SECRET-MARKER-"
BLOB_SIZE = 10 * CHUNK_BYTES + 777


def blob_data(seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < BLOB_SIZE:
        out += BLOB_MARKER + rng.randbytes(8)
    return bytes(out[:BLOB_SIZE])


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_batches(archive: Archive, rng: random.Random) -> None:
    phone, key = new_phone(archive)
    n = 0
    while True:
        records = [
            message(key, f"message {n + i} " + "x" * rng.randrange(2000))
            for i in range(rng.randint(1, 8))
        ]
        n += len(records)
        batch = archive.write_batch([writes.store_record(r, phone, "o") for r in records])
        for stored in batch.results:
            say(f"R {stored.log_index} {stored.record_id.hex()}")


async def run_committer(archive: Archive, rng: random.Random) -> None:
    phone, key = new_phone(archive)
    committer = GroupCommitter(archive)
    committer.start()
    n = 0

    async def push(text: str) -> None:
        committed = await committer.submit(writes.store_record(message(key, text), phone, "o"))
        say(f"R {committed.result.log_index} {committed.result.record_id.hex()}")

    while True:
        count = rng.randint(1, 40)
        await asyncio.gather(
            *(push(f"message {n + i} " + "y" * rng.randrange(500)) for i in range(count))
        )
        n += count


def die_before_keeping(archive: Archive, after: int) -> None:
    """SIGKILL this process at the kept head's write of the batch after `after` kept
    ones: its COMMIT has returned, its head is not kept, its acks are not sent."""
    keep = archive.kept_head.keep
    kept = 0

    def keep_or_die(head: SignedTreeHead) -> None:
        nonlocal kept
        if kept == after:
            say(f"K {head.tree_size}")
            os.kill(os.getpid(), signal.SIGKILL)
        kept += 1
        keep(head)

    archive.kept_head.keep = keep_or_die  # type: ignore[method-assign]


def run_blob(archive: Archive, rng: random.Random, seed: int) -> None:
    data = blob_data(seed)
    sha = hashlib.sha256(data).digest()
    location = archive.write(writes.begin_upload(sha, len(data), archive.blobs.new_location()))
    upload = archive.blobs.start_upload(location, len(data), sha)
    position = upload.offset
    while position < len(data) - 1:
        piece = rng.randint(1, CHUNK_BYTES // 3)
        piece = min(piece, len(data) - 1 - position)  # never finish: we are killed first
        upload.write(data[position : position + piece])
        position += piece
        upload.flush()
        say(f"D {upload.durable_offset}")


def main() -> None:
    data_dir, archive_key, blob_key, sign_seed, mode, seed = sys.argv[1:7]
    archive = Archive.open(
        Path(data_dir),
        bytes.fromhex(archive_key),
        bytes.fromhex(blob_key),
        SigningKey(bytes.fromhex(sign_seed)),
    )
    rng = random.Random(int(seed))
    say("READY")
    if mode == "batch":
        run_batches(archive, rng)
    elif mode == "committer":
        asyncio.run(run_committer(archive, rng))
    elif mode == "kept":
        die_before_keeping(archive, rng.randint(3, 30))
        asyncio.run(run_committer(archive, rng))
    elif mode == "blob":
        run_blob(archive, rng, int(seed))
        say("DONE")
        sys.stdin.read()  # wait to be killed
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
