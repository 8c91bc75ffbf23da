"""A kept head that cannot be written is tried again, and the failure is shown meanwhile;
one that holds no head is named by verify; a creation's leftover is removed.

One failed open (a full disk, a read-only one, a file a root CLI run left 0600)
used to disable the kept head for the process's life, silently after one log
line. The failure here is a directory where the file should be: a real OS error
(EISDIR) that root, who runs these tests, gets too (chmod would not stop root).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from nacl.signing import SigningKey
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.kept_head import FILE_BYTES, RETRY_INTERVAL_S
from strongroom.archive.lost_heads import lost_paths, read_lost_head
from strongroom.archive.store import Archive
from strongroom.archive.verify_runs import run_verification
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.proof.sth import SignedTreeHead
from web_helpers import ADMIN_PASSWORD, login, new_box, web_app

OWNER = "maitre.durand"


def push(archive: Archive, text: str) -> SignedTreeHead:
    device, key = new_phone(archive, owner=OWNER, name=text)
    batch = archive.write_batch([writes.store_record(message(key, text), device, OWNER)])
    assert batch.tree_head is not None
    return batch.tree_head


def opener(data: Path, archive_keys: dict[str, bytes]) -> Callable[[], Archive]:
    """How each test opens (again) the archive in `data`."""
    keys = (archive_keys["archive"], archive_keys["blob"], SigningKey(archive_keys["sign_seed"]))
    return lambda: Archive.open(data, *keys)


def pushed_once(data: Path, archive_keys: dict[str, bytes]) -> Callable[[], Archive]:
    """A closed archive in `data` holding one pushed record; returns its opener."""
    open_archive = opener(data, archive_keys)
    archive = open_archive()
    push(archive, "avant")
    archive.close()
    return open_archive


def test_an_unwritable_kept_head_is_tried_again_at_its_pace(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    open_archive = pushed_once(data, archive_keys)
    path = data / "tree_head.latest"
    path.unlink()
    path.mkdir()
    archive = open_archive()
    try:
        now = [1000.0]
        archive.kept_head.clock = lambda: now[0]
        assert archive.kept_head.failing_since_ms is not None
        push(archive, "pendant")  # tried again at once, and failing still
        assert archive.kept_head.failing_since_ms is not None
        assert "directory" in archive.kept_head.failure
        path.rmdir()  # the operator frees the path
        push(archive, "réparé")  # not tried again before RETRY_INTERVAL_S
        assert archive.witness_head() is None
        now[0] += RETRY_INTERVAL_S
        head = push(archive, "ensuite")
        assert archive.witness_head() == head
        assert archive.kept_head.failing_since_ms is None
        assert push(archive, "encore") == archive.witness_head()
    finally:
        archive.close()


async def test_the_integrity_page_says_the_kept_head_is_not_written(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    data = tmp_path / "data"
    await new_box(data).stop()
    path = data / "tree_head.latest"
    path.unlink()
    path.mkdir()
    box = Box(BoxConfig(data_dir=data))
    box.unlock(ADMIN_PASSWORD)
    try:
        client = await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})
        await login(client, "admin", ADMIN_PASSWORD)
        html = await (await client.get("/integrity")).text()
        assert 'id="kept-head-failing"' in html and "has not been written since" in html
        html = await (await client.get("/integrity", headers={"Accept-Language": "fr"})).text()
        assert "n&#39;est plus écrite depuis" in html
        archive = box.require_archive()
        path.rmdir()
        archive.kept_head.clock = lambda: float("inf")  # the retry's pace has passed
        head = push(archive, "réparé")
        assert archive.witness_head() == head
        html = await (await client.get("/integrity")).text()
        assert 'id="kept-head-failing"' not in html
    finally:
        await box.stop()


def test_a_lost_head_in_a_file_unreadable_at_open_is_kept_aside_at_the_retry(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    open_archive = pushed_once(data, archive_keys)
    shutil.copy(data / "archive.db", tmp_path / "before.db")
    archive = open_archive()
    lost = push(archive, "perdu")
    archive.close()
    shutil.copy(tmp_path / "before.db", data / "archive.db")  # the WAL dropped "perdu"
    path = data / "tree_head.latest"
    path.rename(tmp_path / "kept")
    path.mkdir()  # unreadable while the archive opens: nothing to compare then
    archive = open_archive()
    try:
        assert not (data / "tree_head.lost").exists()
        now = [1000.0]
        archive.kept_head.clock = lambda: now[0]
        push(archive, "pendant")  # the retry at once fails: still a directory
        path.rmdir()
        (tmp_path / "kept").rename(path)  # readable again, holding the lost head
        now[0] += RETRY_INTERVAL_S
        push(archive, "ensuite")  # the retry's open would write over it: kept aside first
        assert read_lost_head(data / "tree_head.lost") == lost
        report, _ = run_verification(archive, "full")
        assert "acknowledged records were lost" in "\n".join(report.problems)
    finally:
        archive.close()


def test_a_kept_head_with_no_whole_slot_is_named_not_taken_for_none(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    archive = opener(tmp_path / "data", archive_keys)()
    try:
        push(archive, "avant")
        assert run_verification(archive, "full")[0].ok
        # Both slots torn (a card that lost the whole file's blocks): no witness left.
        archive.witness_path.write_bytes(bytes(FILE_BYTES))
        for mode in ("incremental", "full"):
            report, _ = run_verification(archive, mode)  # type: ignore[arg-type]
            assert "kept tree head (tree_head.latest) is unreadable" in "\n".join(report.problems)
        # The next commit's head makes it whole again, and verify passes.
        push(archive, "ensuite")
        report, _ = run_verification(archive, "full")
        assert report.ok, report.problems
    finally:
        archive.close()


def test_a_stale_temporary_file_is_removed_at_open(
    tmp_path: Path, archive_keys: dict[str, bytes]
) -> None:
    data = tmp_path / "data"
    open_archive = opener(data, archive_keys)
    open_archive().close()
    # A process killed inside the file's creation leaves its temporary file.
    (data / "tree_head.tmp").write_bytes(b"SRKHEAD1 partial")
    open_archive().close()
    assert not (data / "tree_head.tmp").exists()


def test_a_lost_head_file_named_with_unicode_digits_is_not_a_loss_and_breaks_nothing(
    tmp_path: Path,
) -> None:
    # "²" passes str.isdigit() but not int(): such a name (copied in by hand, or by a
    # tool) must be ignored, not crash every verify that lists the losses.
    for name in ("tree_head.lost", "tree_head.lost.2", "tree_head.lost.²", "tree_head.lost.x"):
        (tmp_path / name).write_bytes(b"{}")
    assert [p.name for p in lost_paths(tmp_path)] == ["tree_head.lost", "tree_head.lost.2"]
