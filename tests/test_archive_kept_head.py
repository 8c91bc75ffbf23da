"""The kept head (`tree_head.latest`) is written off the committer's path (archive/witness.py).

A phone's ack means "durable in the database"; the copy of the newest head kept
outside it may lag (it is not fsynced), so no ack waits for its write. A slow disk
at that file's rename (the hardware edge, simulated) must not hold the acks back,
and the archive still reads the newest head it committed once the disk answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import WITNESS_FILE, Archive, Txn


def _leaf(txn: Txn) -> int:
    return txn.append_leaf("message", os.urandom(32))


def _index(result: Any) -> int | None:
    return result if isinstance(result, int) else None


async def test_an_ack_does_not_wait_for_the_kept_head_write(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = archive.witness_head()  # the empty tree's head, written at creation
    assert before is not None
    answer = threading.Event()
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst).name == WITNESS_FILE:
            answer.wait(30)
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    committer = GroupCommitter(archive)
    committer.start()
    try:
        # The disk has not answered the rename: the ack comes anyway (old code: it
        # waited for the rename, so this timed out).
        committed = await asyncio.wait_for(committer.submit(_leaf, log_index_of=_index), 10)
        assert committed.tree_head is not None and committed.inclusion_proof is not None
        assert committed.tree_head.tree_size == before.tree_size + 1
        answer.set()
        # Once it has, the archive reads the head it just committed, not an older one.
        assert await asyncio.to_thread(archive.witness_head) == committed.tree_head
    finally:
        answer.set()
        await asyncio.to_thread(committer.stop)


def test_every_batch_head_is_read_back_and_close_writes_the_last(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    def open_archive() -> Archive:
        return Archive.open(
            tmp_path / "data",
            archive_keys["archive"],
            archive_keys["blob"],
            SigningKey(archive_keys["sign_seed"]),
        )

    archive = open_archive()
    try:
        for _ in range(20):
            batch = archive.write_batch([_leaf, _leaf])
            assert archive.witness_head() == batch.tree_head
        for _ in range(20):  # written back to back, read once at the end
            last = archive.write_batch([_leaf]).tree_head
    finally:
        archive.close()
    reopened = open_archive()
    try:
        assert reopened.witness_head() == last
        assert last is not None and last.tree_size == 20 * 2 + 20
    finally:
        reopened.close()
