"""The box keeps SQLite's lock on its wal-index while its checkpointer reads it.

Closing any descriptor of a file drops every POSIX lock the process holds on
it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2). The checkpointer
once opened and closed archive.db-shm at each look: within a second of a commit
the box no longer held its shared ("DMS") lock on the wal-index, the next
process to open the archive (a CLI command, a test counting rows) found nobody
using it and truncated the wal-index to rebuild it, and the box, whose SQLite
maps that file, died of SIGBUS (a CI run under load: test_abuse_frames.py).

Who holds that lock is asked of the kernel (F_GETLK) by another process: a
process never sees its own locks that way.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from archive_helpers import committing, message, new_phone, open_with_keys
from fault_helpers import ABUSE_LIMITS, BoxProcess, count, pair_phone, still_served
from strongroom.archive import writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive

# SQLite's unix VFS: the wal-index's "DMS" lock is byte (22 + 8) * 4 + 8 of the -shm
# file. Every process using the archive holds it shared; one that gets it exclusive
# believes it is alone and truncates the wal-index.
DMS_BYTE = 128

_HOLDER = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
query = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, int(sys.argv[2]), 1, 0)
kind, _, _, _, pid = struct.unpack("@hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))
names = {fcntl.F_UNLCK: "nobody", fcntl.F_RDLCK: "shared", fcntl.F_WRLCK: "exclusive"}
print(names[kind], pid if kind != fcntl.F_UNLCK else 0)
"""


async def dms_holder(archive_path: Path) -> tuple[str, int]:
    """Who holds the wal-index's DMS lock, as another process sees it."""
    shm = f"{archive_path}-shm"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _HOLDER, shm, str(DMS_BYTE)],
        capture_output=True,
        text=True,
        check=True,
    )
    kind, pid = done.stdout.split()
    return kind, int(pid)


@pytest.fixture
async def running(archive: Archive) -> AsyncIterator[tuple[Archive, GroupCommitter]]:
    async with committing(archive) as committer:
        yield archive, committer


async def test_the_checkpointer_looking_at_the_wal_leaves_the_archive_locked(
    running: tuple[Archive, GroupCommitter],
) -> None:
    archive, committer = running
    checkpointer = committer.checkpointer
    assert checkpointer is not None
    assert await dms_holder(archive.path) == ("shared", os.getpid())
    device, key = new_phone(archive)
    for n in range(3):
        await committer.submit(writes.store_record(message(key, f"n°{n}"), device, "maitre"))
        # What its thread does at each poke, here on this thread: it has certainly run.
        await asyncio.to_thread(checkpointer.run_once)
        assert await dms_holder(archive.path) == ("shared", os.getpid())


def descriptors_of(path: Path) -> list[str]:
    fds = Path("/proc/self/fd")
    return [fd.name for fd in fds.iterdir() if os.path.realpath(fd) == str(path)]


def test_the_wal_index_is_let_go_of_with_the_archive(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    archive = open_with_keys(tmp_path / "data", archive_keys)
    shm = Path(f"{archive.path}-shm").resolve()
    committer = GroupCommitter(archive)
    committer.start()
    assert archive.wal_index.state() is not None  # it looked: its descriptor is open
    committer.stop()
    assert descriptors_of(shm), "the wal-index was let go of before the archive"
    archive.close()
    assert descriptors_of(shm) == []


async def test_a_process_reading_the_archive_beside_the_box_leaves_it_running(
    tmp_path: Path,
) -> None:
    """What a CLI command does beside the box; the box commits meanwhile (pushes)."""
    box = await BoxProcess(tmp_path / "box", limits=ABUSE_LIMITS).start()
    try:
        phone = await pair_phone(box, "claire")
        archive_path = box.data_dir / "archive.db"
        try:
            for n in range(3):
                await still_served(phone, n)
                assert count(box.data_dir, "SELECT count(*) FROM records") == n + 1
                assert box.running, box.exit_report()
                assert await dms_holder(archive_path) == ("shared", box.pid)
        finally:
            await phone.close()
        second = await pair_phone(box, "claire", "second")
        try:
            await still_served(second, 9)
        finally:
            await second.close()
        assert box.running, box.exit_report()
    finally:
        await box.stop()
