"""SIGKILL in the middle of writing: the archive opens, verifies, and holds every returned write."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from archive_crash_child import BLOB_MARKER, blob_data
from archive_helpers import open_with_keys
from strongroom.archive import writes
from strongroom.archive.blobs import CHUNK_BYTES, BlobLocation
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive

CHILD = Path(__file__).with_name("archive_crash_child.py")


def run_and_kill(
    data_dir: Path, keys: dict[str, bytes], mode: str, seed: int, kill_after: int
) -> list[list[str]]:
    """Start the writer, let it report `kill_after` durable writes, SIGKILL it mid-stream."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            str(data_dir),
            keys["archive"].hex(),
            keys["blob"].hex(),
            keys["sign_seed"].hex(),
            mode,
            str(seed),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[list[str]] = []
    try:
        ready = proc.stdout.readline()
        assert ready == "READY\n", proc.stderr.read()
        while len(lines) < kill_after:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer died on its own: {proc.stderr.read()}")
            if line != "DONE\n":
                lines.append(line.split())
            else:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Lines already in the pipe were printed after their write returned: they count too.
    lines += [line.split() for line in proc.stdout.read().splitlines() if line != "DONE"]
    proc.stdout.close()
    proc.stderr.close()
    if proc.stdin is not None:
        proc.stdin.close()
    assert proc.returncode == -signal.SIGKILL
    return lines


def assert_verifies(archive: Archive) -> None:
    reader = archive.reader()
    # With the kept head (tree_head.latest): a kill may leave it behind the log, never
    # ahead of it nor off it (kept_head.py).
    report = verify_archive(
        reader,
        archive.blobs,
        bytes(archive.signing_key.verify_key),
        witness=archive.witness_head(),
    )
    assert archive.witness_head() is not None
    reader.close()
    assert report.ok, report.problems
    assert report.tree_head is not None and report.tree_head.tree_size == archive.log.size


@pytest.mark.parametrize("mode", ["batch", "committer"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_returned_write_survives_sigkill(
    tmp_path: Path, archive_keys: dict[str, bytes], mode: str, seed: int
) -> None:
    rng = random.Random(seed * 7919 + len(mode))
    data_dir = tmp_path / "data"
    # Two runs on the same archive: killed once, reopened by a new writer, killed again.
    reported: dict[int, str] = {}
    for round_ in range(2):
        lines = run_and_kill(data_dir, archive_keys, mode, seed * 10 + round_, rng.randint(1, 120))
        for tag, index, record_id in lines:
            assert tag == "R"
            assert int(index) not in reported, "an index was handed out twice"
            reported[int(index)] = record_id
        assert lines, "the writer reported nothing before it was killed"

    archive = open_with_keys(data_dir, archive_keys)
    try:
        assert_verifies(archive)
        stored = {
            int(i): bytes(r).hex()
            for i, r in archive.conn.execute("SELECT log_index, record_id FROM records")
        }
        for acked_index, acked_id in reported.items():
            assert stored.get(acked_index) == acked_id, f"acked record at log {acked_index} is lost"
        # And the archive still takes writes after the crashes.
        archive.write(writes.audit("test", "after-crash"))
        assert_verifies(archive)
    finally:
        archive.close()


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_a_killed_blob_upload_resumes_and_verifies(
    tmp_path: Path, archive_keys: dict[str, bytes], seed: int
) -> None:
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    lines = run_and_kill(data_dir, archive_keys, "blob", seed, rng.randint(1, 30))
    durable = max((int(offset) for _, offset in lines), default=0)
    data = blob_data(seed)
    sha = hashlib.sha256(data).digest()

    archive = open_with_keys(data_dir, archive_keys)
    try:
        assert_verifies(archive)
        for path in (data_dir / "blobs").rglob("*"):
            if path.is_file():
                assert BLOB_MARKER not in path.read_bytes(), f"plaintext in {path}"
        file_name, salt, size = archive.conn.execute(
            "SELECT file_name, key_salt, size FROM uploads WHERE sha256 = ?", (sha,)
        ).fetchone()
        location = BlobLocation(str(file_name), bytes(salt))
        upload = archive.blobs.start_upload(location, int(size), sha)
        assert upload.offset >= durable, "bytes reported durable were lost"
        assert upload.offset % CHUNK_BYTES == 0
        upload.write(data[upload.offset :])
        upload.finish()
        archive.blobs.complete(upload, location)
        archive.write(writes.register_blob(sha, len(data), location))
        assert b"".join(archive.blobs.read_chunks(location, len(data))) == data
        assert archive.conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
        assert_verifies(archive)
    finally:
        archive.close()
    assert os.listdir(data_dir / "blobs" / "partial") == []
