"""The kept head (tree_head.latest): written in place, never torn, verified when it lags.

A damaged WAL makes SQLite drop the last commits and the shorter archive agrees
with itself; the head kept outside the database is how verify notices. These
tests lose commits the way that leaves the data dir (an older archive.db beside
a newer kept head) and check what full and incremental verify say, and what a
lagging head (a process killed before writing it, a torn slot) leaves.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import kept_head, writes
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.kept_head import (
    FILE_BYTES,
    MAGIC,
    SLOT_BYTES,
    SLOT_STRIDE,
    decode_slot,
    encode_slot,
)
from strongroom.archive.store import Archive
from strongroom.archive.verify_records import VerifyReport
from strongroom.archive.verify_runs import Mode, run_verification
from strongroom.proof.sth import SignedTreeHead

CHILD = Path(__file__).with_name("archive_crash_child.py")
OWNER = "maitre.durand"
LOST = "acknowledged records were lost"
REWRITTEN = "were rewritten"


def reopen(data_dir: Path, keys: dict[str, bytes]) -> Archive:
    return Archive.open(data_dir, keys["archive"], keys["blob"], SigningKey(keys["sign_seed"]))


@contextmanager
def reopened(data_dir: Path, keys: dict[str, bytes]) -> Iterator[Archive]:
    """`reopen`, closed again whatever the test asserts."""
    archive = reopen(data_dir, keys)
    try:
        yield archive
    finally:
        archive.close()


def fill(archive: Archive, key: SigningKey, device: int, count: int, word: str) -> SignedTreeHead:
    batch = archive.write_batch(
        [writes.store_record(message(key, f"{word} {i}"), device, OWNER) for i in range(count)]
    )
    assert batch.tree_head is not None
    return batch.tree_head


def problems(report: VerifyReport) -> str:
    return "\n".join(report.problems)


def test_each_head_is_written_in_place_and_nothing_appears_beside_it(archive: Archive) -> None:
    data_dir = archive.path.parent
    device, key = new_phone(archive, owner=OWNER)
    inode = archive.witness_path.stat().st_ino
    before = {p.name for p in data_dir.iterdir()}
    seen: set[str] = set()
    done = threading.Event()

    def list_the_data_dir() -> None:  # as a backup, a scan for plaintext or a test would
        while not done.is_set():
            seen.update(p.name for p in data_dir.iterdir())

    lister = threading.Thread(target=list_the_data_dir)
    lister.start()
    try:
        for n in range(40):
            head = fill(archive, key, device, 3, f"lot {n}")
            assert archive.witness_head() == head
    finally:
        done.set()
        lister.join()
    assert archive.witness_path.stat().st_ino == inode, "the kept head was replaced, not rewritten"
    assert seen <= before, f"transient entries in the data dir: {sorted(seen - before)}"
    assert archive.witness_path.stat().st_size == FILE_BYTES


def test_a_torn_newest_slot_leaves_the_previous_head_which_verify_accepts(
    archive: Archive,
) -> None:
    device, key = new_phone(archive, owner=OWNER)
    older = fill(archive, key, device, 5, "avant")
    newest = fill(archive, key, device, 5, "après")
    content = bytearray(archive.witness_path.read_bytes())
    slots = [decode_slot(bytes(content[i * SLOT_STRIDE :][:SLOT_BYTES])) for i in (0, 1)]
    assert {s[1] for s in slots if s is not None} == {older, newest}
    torn = max((0, 1), key=lambda i: slots[i][0])  # type: ignore[index]
    # A power cut in the middle of the slot's write: its second half is still the old bytes.
    start = torn * SLOT_STRIDE
    content[start + 100 : start + SLOT_BYTES] = bytes(SLOT_BYTES - 100)
    archive.witness_path.write_bytes(bytes(content))
    assert archive.witness_head() == older
    report, _ = run_verification(archive, "full")
    assert report.ok, report.problems
    # And the next head goes over the torn slot, not over the whole one.
    after = fill(archive, key, device, 1, "ensuite")
    assert archive.witness_head() == after
    rewritten = archive.witness_path.read_bytes()
    assert decode_slot(rewritten[(1 - torn) * SLOT_STRIDE :][:SLOT_BYTES]) is not None


def lose_the_last_commits(
    data_dir: Path, keys: dict[str, bytes], commits: list[str], tmp: Path
) -> tuple[SignedTreeHead, SignedTreeHead]:
    """Commit, then put back the database from before those commits, keeping the kept head
    (what a WAL dropped on recovery leaves). Returns (the head left, the head kept)."""
    shutil.copy(data_dir / "archive.db", tmp / "before.db")
    archive = reopen(data_dir, keys)
    left = archive.latest_tree_head()
    device, key = new_phone(archive, owner=OWNER, name="Perdu")
    for word in commits:
        kept = fill(archive, key, device, 4, word)
    archive.close()
    shutil.copy(tmp / "before.db", data_dir / "archive.db")
    assert left is not None
    return left, kept


@contextmanager
def two_commits_lost(
    data_dir: Path, keys: dict[str, bytes], tmp: Path
) -> Iterator[tuple[Archive, SignedTreeHead, SignedTreeHead]]:
    """The archive reopened after losing its last two commits (`lose_the_last_commits`),
    its log back at the head left: (the archive, the head left, the head kept)."""
    left, kept = lose_the_last_commits(data_dir, keys, ["perdu 1", "perdu 2"], tmp)
    with reopened(data_dir, keys) as archive:
        assert archive.latest_tree_head() == left
        yield archive, left, kept


@pytest.fixture
def verified(tmp_path: Path, archive_keys: dict[str, bytes]) -> Path:
    """A closed archive with 60 records and one passing full verification."""
    data_dir = tmp_path / "data"
    archive = reopen(data_dir, archive_keys)
    device, key = new_phone(archive, owner=OWNER)
    for n in range(3):
        fill(archive, key, device, 20, f"dossier {n}")
    report, _ = run_verification(archive, "full")
    assert report.ok, report.problems
    archive.close()
    return data_dir


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_commits_lost_behind_the_kept_head_are_named(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path, mode: Mode
) -> None:
    with two_commits_lost(verified, archive_keys, tmp_path) as (archive, left, kept):
        assert archive.witness_head() == kept
        report, run = run_verification(archive, mode)
        assert run.kind == mode
        assert not report.ok and LOST in problems(report), report.problems
        assert f"size {kept.tree_size} but only {left.tree_size}" in problems(report)


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_a_kept_head_the_log_does_not_contain_is_refused_a_lagging_one_accepted(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path, mode: Mode
) -> None:
    # The log loses a commit, and goes on with other records over the same indexes.
    _, lost = lose_the_last_commits(verified, archive_keys, ["perdu"], tmp_path)
    foreign = (verified / "tree_head.latest").read_bytes()
    with reopened(verified, archive_keys) as archive:
        # The open kept the lost head aside (named at every run until moved away: see
        # the tests below); moved away here, as an operator would, to see the kept head
        # alone.
        (verified / "tree_head.lost").rename(tmp_path / "tree_head.lost")
        device, key = new_phone(archive, owner=OWNER, name="Réécrit")
        same_size = fill(archive, key, device, 4, "réécrit")
        assert same_size.tree_size == lost.tree_size and same_size.root_hash != lost.root_hash
        lagging = (verified / "tree_head.latest").read_bytes()
        fill(archive, key, device, 4, "ensuite")
        # The last verified head is now past both kept heads below (the incremental run
        # checks them with a consistency proof to the newest head).
        report, _ = run_verification(archive, "full")
        assert report.ok, report.problems
        fill(archive, key, device, 2, "encore")
    (verified / "tree_head.latest").write_bytes(lagging)
    with reopened(verified, archive_keys) as archive:
        assert archive.witness_head() == same_size
        report, run = run_verification(archive, mode)
        assert run.kind == mode and report.ok, report.problems
    (verified / "tree_head.latest").write_bytes(foreign)
    with reopened(verified, archive_keys) as archive:
        assert archive.witness_head() == lost
        report, run = run_verification(archive, mode)
        assert run.kind == mode
        assert not report.ok and REWRITTEN in problems(report), report.problems
        assert f"signed at size {lost.tree_size}" in problems(report)


def test_the_one_file_of_earlier_versions_is_read_and_converted_with_its_head(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path
) -> None:
    # Written before this format: one JSON object. Lost commits behind it stay named.
    _, kept = lose_the_last_commits(verified, archive_keys, ["perdu"], tmp_path)
    (verified / "tree_head.latest").write_text(json.dumps(kept.to_dict()), encoding="ascii")
    with reopened(verified, archive_keys) as archive:
        assert archive.witness_head() == kept
        content = archive.witness_path.read_bytes()
        assert content.startswith(MAGIC) and len(content) == FILE_BYTES
        report, _ = run_verification(archive, "full")
        assert LOST in problems(report), report.problems


def test_the_flusher_syncs_the_kept_head_off_the_committer_at_its_pace(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pace no run of this test reaches: every commit after the first comes within
    # the interval by construction, whatever the machine's load. A flusher at its
    # pace flushes once while the committer runs; one that flushed after every group
    # commit (30 here) would not (review L3: a bound on the elapsed time let it pass
    # on a loaded machine).
    monkeypatch.setattr(kept_head, "FLUSH_INTERVAL_S", 3600.0)
    device, key = new_phone(archive, owner=OWNER)
    committer = GroupCommitter(archive)
    committer.start()

    async def push(n: int) -> None:
        await committer.submit(writes.store_record(message(key, f"m {n}"), device, OWNER))

    async def pushes() -> None:
        for start in range(0, 600, 20):  # many small group commits
            await asyncio.gather(*(push(n) for n in range(start, start + 20)))

    try:
        asyncio.run(pushes())
        assert archive.witness_head() == archive.latest_tree_head()
        deadline = time.monotonic() + 10
        while archive.kept_head.flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Flushed while the committer runs, not only when it stops...
        flushed_while_running = archive.kept_head.flushes
        batches = committer.batches
    finally:
        committer.stop()
    # ...and at its pace, not once per group commit: the first head at once, the
    # heads kept meanwhile coalesce into the next flush (here, when it stops).
    assert batches >= 30
    assert flushed_while_running == 1, (flushed_while_running, batches)
    assert archive.kept_head.flushes == 2
    assert archive.kept_head._flusher is None


def test_a_kill_between_a_commit_and_its_kept_head_leaves_a_lagging_head_over_every_ack(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data_dir = tmp_path / "data"
    for seed in (1, 2):
        proc = subprocess.run(
            [
                sys.executable,
                str(CHILD),
                str(data_dir),
                archive_keys["archive"].hex(),
                archive_keys["blob"].hex(),
                archive_keys["sign_seed"].hex(),
                "kept",
                str(seed),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        lines = [line.split() for line in proc.stdout.splitlines()[1:]]
        assert lines[-1][0] == "K", proc.stdout[-500:]
        committed = int(lines[-1][1])
        acked = {int(index): record for tag, index, record in lines[:-1] if tag == "R"}
        assert acked, "nothing was acknowledged before the kill"
        with reopened(data_dir, archive_keys) as archive:
            kept = archive.witness_head()
            # The killed batch is durable (its COMMIT returned) but was not acknowledged,
            # and its head was not kept: the kept head lags by that one commit...
            assert archive.log.size == committed
            assert kept is not None and kept.tree_size < committed
            # ...and every acknowledged record is under it.
            assert max(acked) < kept.tree_size
            stored = {
                int(i): bytes(r).hex()
                for i, r in archive.conn.execute("SELECT log_index, record_id FROM records")
            }
            assert all(stored.get(i) == r for i, r in acked.items())
            mode: Mode = "incremental" if seed == 2 else "full"
            report, run = run_verification(archive, mode)
            assert run.kind == mode and report.ok, report.problems


@pytest.mark.parametrize("mode", ["incremental", "full"])
def test_a_loss_stays_named_after_the_first_write_that_follows_the_restart(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path, mode: Mode
) -> None:
    # The first batch after the restart (a phone's push) writes its smaller head over
    # the kept one: the loss is still named, from tree_head.lost, at every run.
    with two_commits_lost(verified, archive_keys, tmp_path) as (archive, _, kept):
        device, key = new_phone(archive, owner=OWNER, name="Après")
        pushed = fill(archive, key, device, 1, "après le redémarrage")
        assert archive.witness_head() == pushed and pushed.tree_size < kept.tree_size
        for n in range(2):  # (after a failed run, the next is a full one)
            report, run = run_verification(archive, mode)
            assert run.kind == (mode if n == 0 else "full")
            assert not report.ok and LOST in problems(report), report.problems
            assert f"size {kept.tree_size} but only {pushed.tree_size}" in problems(report)
            assert "tree_head.lost" in problems(report)
    # Reopened again, and written past the lost head's size: still named (as rewritten).
    with reopened(verified, archive_keys) as archive:
        device, key = new_phone(archive, owner=OWNER, name="Encore")
        beyond = fill(archive, key, device, 12, "encore")
        assert beyond.tree_size > kept.tree_size
        report, _ = run_verification(archive, mode)
        assert not report.ok and REWRITTEN in problems(report), report.problems
        assert "tree_head.lost" in problems(report)
        # One file: the same head found at each open is not copied twice.
        assert sorted(p.name for p in verified.glob("tree_head.lost*")) == ["tree_head.lost"]


def test_a_second_loss_is_kept_beside_the_first_never_over_it(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path
) -> None:
    _, first = lose_the_last_commits(verified, archive_keys, ["perdu"], tmp_path)
    reopen(verified, archive_keys).close()
    first_file = (verified / "tree_head.lost").read_bytes()
    (tmp_path / "before.db").unlink()
    _, second = lose_the_last_commits(verified, archive_keys, ["perdu", "encore"], tmp_path)
    with reopened(verified, archive_keys) as archive:
        assert (verified / "tree_head.lost").read_bytes() == first_file
        assert (
            SignedTreeHead.from_dict(json.loads((verified / "tree_head.lost.2").read_bytes()))
            == second
        )
        assert second != first
        report, _ = run_verification(archive, "full")
        assert "tree_head.lost:" in problems(report) and "tree_head.lost.2:" in problems(report)
    # The first one dealt with (moved away), the second is still named, and a third
    # loss never goes over it.
    (verified / "tree_head.lost").rename(tmp_path / "tree_head.lost")
    (tmp_path / "before.db").unlink()
    _, third = lose_the_last_commits(verified, archive_keys, ["troisième"], tmp_path)
    with reopened(verified, archive_keys) as archive:
        assert (
            SignedTreeHead.from_dict(json.loads((verified / "tree_head.lost.3").read_bytes()))
            == third
        )
        report, _ = run_verification(archive, "full")
        assert "tree_head.lost.2:" in problems(report) and "tree_head.lost.3:" in problems(report)
        assert "tree_head.lost:" not in problems(report)


def test_no_lost_file_for_a_head_the_log_holds(
    verified: Path, archive_keys: dict[str, bytes]
) -> None:
    archive = reopen(verified, archive_keys)
    archive.close()
    assert not list(verified.glob("tree_head.lost*"))


def test_the_slots_are_in_two_blocks_and_the_side_by_side_file_is_converted(
    verified: Path, archive_keys: dict[str, bytes], tmp_path: Path
) -> None:
    # Both slots in one 4 KiB block: a torn write of that block could tear both.
    older, kept = lose_the_last_commits(verified, archive_keys, ["perdu"], tmp_path)
    content = (verified / "tree_head.latest").read_bytes()
    found = [decode_slot(content[i * SLOT_STRIDE :][:SLOT_BYTES]) for i in (0, 1)]
    assert all(f is not None for f in found) and SLOT_STRIDE >= 4096
    # The layout before: two slots side by side (1024 bytes), the newest in the second.
    side_by_side = encode_slot(7, older) + encode_slot(8, kept)
    (verified / "tree_head.latest").write_bytes(side_by_side)
    with reopened(verified, archive_keys) as archive:
        assert archive.witness_head() == kept
        assert archive.witness_path.stat().st_size == FILE_BYTES
        report, _ = run_verification(archive, "full")
        assert LOST in problems(report), report.problems
