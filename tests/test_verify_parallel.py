"""Full verify checks signatures on two workers (threads, or processes for a big run),
chunks ahead of the main thread: every record is still checked once, in order, and
each problem is named."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from archive_helpers import message, new_phone
from strongroom.archive import verify_sign, writes
from strongroom.archive.store import Archive
from strongroom.archive.verify import verify_archive
from strongroom.archive.verify_records import CHUNK_ROWS

RECORDS = 3 * CHUNK_ROWS + 17  # a partial last chunk


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_a_bad_signature_in_any_chunk_is_named_and_every_record_counted(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    started: list[bool] = []
    real_init = verify_sign.SignaturePool.__init__

    def init(pool: verify_sign.SignaturePool, keys: dict[int, bytes], records: int) -> None:
        real_init(pool, keys, records)
        started.append(pool.processes)

    monkeypatch.setattr(verify_sign.SignaturePool, "__init__", init)
    monkeypatch.setattr(verify_sign, "workers", lambda: 2)  # two even on a one-core runner
    if workers == "processes":
        monkeypatch.setattr(verify_sign, "PROCESS_THRESHOLD", 1)
    device, key = new_phone(archive)
    ops = [
        writes.store_record(message(key, f"message {n}", at=1_700_000_000_000 + n), device, "o")
        for n in range(RECORDS)
    ]
    for start in range(0, RECORDS, 500):
        archive.write_batch(ops[start : start + 500])
    conn = archive.conn
    ids = [int(r[0]) for r in conn.execute("SELECT id FROM records ORDER BY id")]
    # First chunk, a chunk boundary, the middle, the partial last chunk.
    forged = [ids[3], ids[CHUNK_ROWS], ids[2 * CHUNK_ROWS + 5], ids[-1]]
    for row_id in forged:
        conn.execute("UPDATE records SET signature = zeroblob(64) WHERE id = ?", (row_id,))
    # A signature column of the wrong type: named, and the rest still checked.
    odd = ids[CHUNK_ROWS + 7]
    conn.execute("UPDATE records SET signature = 'pas une signature' WHERE id = ?", (odd,))
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert report.records == RECORDS
    named = sorted([*forged, odd])
    assert [p for p in report.problems if "signature" in p] == [
        f"record {row_id} (log {_log_index(archive, row_id)}): the device signature does not verify"
        for row_id in named
    ]
    assert len(report.problems) == len(named), report.problems
    assert started == [workers == "processes"]


def _log_index(archive: Archive, row_id: int) -> int:
    row = archive.conn.execute("SELECT log_index FROM records WHERE id = ?", (row_id,))
    return int(row.fetchone()[0])


@pytest.mark.parametrize("package", ["nacl", "strongroom"])
def test_the_worker_processes_ignore_a_package_in_the_working_directory(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package: str
) -> None:
    """`strongroom verify` run from a directory holding a `nacl/` or `strongroom/`
    must not run that code in its signature workers."""
    poisoned = tmp_path / "poisoned"
    marker = tmp_path / "ran"
    (poisoned / package).mkdir(parents=True)
    (poisoned / package / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('owned')\n", encoding="utf-8"
    )
    monkeypatch.chdir(poisoned)
    monkeypatch.setattr(verify_sign, "workers", lambda: 2)
    monkeypatch.setattr(verify_sign, "PROCESS_THRESHOLD", 1)
    device, key = new_phone(archive)
    archive.write_batch(
        [writes.store_record(message(key, f"message {n}"), device, "o") for n in range(40)]
    )
    with closing(archive.reader()) as reader:
        report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
    assert not marker.exists(), "a worker imported the working directory's package"
    assert report.ok, report.problems
    assert report.records == 40
