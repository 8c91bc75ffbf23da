"""Disk full: the archive on a 4 MiB tmpfs, pushed through the group committer until it fills.

A full disk must surface as StorageFull (a clear error the peer layer turns
into a "storage-full" frame), lose nothing that was acked, and heal by itself
as soon as space is freed: no restart, no manual repair.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_helpers import message, new_phone, open_with_keys
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.errors import StorageFull
from strongroom.archive.verify import verify_archive
from strongroom.archive.writes import store_record
from support.small_disk import mounted_tmpfs

BALLAST_BYTES = 768 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A size-limited tmpfs mounted for the test (root only), unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "small-disk", "4m") as mount_point:
        yield mount_point


async def test_disk_full_is_a_clear_error_loses_nothing_acked_and_heals_without_restart(
    small_disk: Path, archive_keys: dict[str, bytes]
) -> None:
    ballast = small_disk / "ballast"
    ballast.write_bytes(os.urandom(BALLAST_BYTES))
    archive = open_with_keys(small_disk / "data", archive_keys)
    committer = GroupCommitter(archive)
    committer.start()
    try:
        device, key = new_phone(archive)
        acked: list[bytes] = []
        failure: BaseException | None = None

        async def push(n: int) -> None:
            nonlocal failure
            record = message(key, f"dossier {n} " + "x" * 2000)
            try:
                await committer.submit(store_record(record, device, "maitre.durand"))
            except BaseException as exc:
                failure = failure or exc
                return
            acked.append(record.record_id)

        for round_ in range(400):  # 4 MiB hold far fewer than 400 x 8 x 2 KiB
            await asyncio.gather(*(push(round_ * 8 + i) for i in range(8)))
            if failure is not None:
                break
        assert isinstance(failure, StorageFull), f"expected StorageFull, got {failure!r}"
        assert "full" in str(failure)
        assert acked, "the disk filled before any record was acked: the test proves nothing"

        ballast.unlink()  # the admin frees space; the box must carry on by itself

        later = message(key, "après le disque plein / after the disk was full")
        committed = await committer.submit(store_record(later, device, "maitre.durand"))
        assert not committed.result.duplicate
        acked.append(later.record_id)

        reader = archive.reader()
        try:
            stored = {bytes(r) for (r,) in reader.execute("SELECT record_id FROM records")}
            report = verify_archive(reader, archive.blobs, bytes(archive.signing_key.verify_key))
        finally:
            reader.close()
        assert set(acked) <= stored
        assert report.ok, report.problems
        assert report.tree_head is not None and report.tree_head.tree_size == report.leaves
    finally:
        await asyncio.to_thread(committer.stop)
        archive.close()

    # And after a restart everything acked is still there and verifies.
    reopened = open_with_keys(small_disk / "data", archive_keys)
    try:
        stored = {bytes(r) for (r,) in reopened.conn.execute("SELECT record_id FROM records")}
        assert set(acked) <= stored
        again = verify_archive(
            reopened.conn, reopened.blobs, bytes(reopened.signing_key.verify_key)
        )
        assert again.ok, again.problems
    finally:
        reopened.close()
