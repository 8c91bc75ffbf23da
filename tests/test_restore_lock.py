"""One restore at a time per data dir, and never beside a running box.

`strongroom restore-backup` runs as the strongroom user, who could also run it
while the service (and its set-up wizard) is up. It refuses a box that answers
on the control socket; the wizard's restore and the command's hold the data
dir's `.restore.lock` from the first check to the sealed identity, so neither
removes the other's staging dir nor seals an identity over the other's archive.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from e2e_helpers import start_box
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.unlock import BoxPhase
from strongroom.web.jobs import JobState
from test_cli_backup import _one_backup
from test_cli_identity import run_cli
from test_web_backup import (  # noqa: F401  (fixtures)
    Source,
    back_up,
    files_under,
    fresh,
    restore_through_wizard,
    source,
)
from web_helpers import phase_of, web_app


@contextmanager
def held_restore_lock(data_dir: Path) -> Iterator[None]:
    """What another restore holds while it runs (its own open of the lock file)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / ".restore.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def another_restores_staging(data_dir: Path) -> Path:
    """A staging dir as a running restore has it: half-written, encrypted copies."""
    staging = data_dir / ".wizard-restore-0123456789abcdef"
    staging.mkdir(parents=True)
    (staging / "archive.db").write_bytes(b"being written by the other restore")
    return staging


def restore_cli(data: Path, usb: Path, words: Path, secret: Path) -> list[str]:
    return [
        "restore-backup", "--data", str(data), "--words-file", str(words),
        "--passphrase-file", str(secret), "--yes", str(usb),
    ]  # fmt: skip


async def test_restore_backup_refuses_while_the_box_is_running(tmp_path: Path) -> None:
    """The service is up on a new box (its wizard waiting): the command refuses, in
    French and English, and touches nothing; stopped, the same command restores."""
    usb, words, secret = await asyncio.to_thread(_one_backup, tmp_path)
    config = BoxConfig(data_dir=tmp_path / "new-box", port=0)
    config.data_dir.mkdir(mode=0o700)  # as the installer makes it
    running = await start_box(config, unlock=False)
    try:
        assert running.box.phase is BoxPhase.UNINITIALISED
        staging = another_restores_staging(config.data_dir)
        before = files_under(config.data_dir)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "strongroom", *restore_cli(config.data_dir, usb, words, secret),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        stderr = err.decode()
        assert process.returncode == 1, stderr
        assert "a box is running with data in" in stderr and "systemctl stop strongroom" in stderr
        assert "un boîtier est en marche" in stderr
        assert "restored set" not in out.decode()
        assert files_under(config.data_dir) == before  # not even a lock file
        assert (staging / "archive.db").read_bytes().startswith(b"being written")
        assert running.box.phase is BoxPhase.UNINITIALISED
    finally:
        await running.stop()
    restored = await asyncio.to_thread(run_cli, *restore_cli(config.data_dir, usb, words, secret))
    assert restored.returncode == 0, restored.stderr
    assert (config.data_dir / "keystore.json").is_file()
    assert not staging.exists()  # a stale staging dir goes, once the lock is ours


def test_restore_backup_waits_for_no_one_and_removes_nothing_of_a_running_restore(
    tmp_path: Path,
) -> None:
    usb, words, secret = _one_backup(tmp_path)
    data = tmp_path / "new-box"
    staging = another_restores_staging(data)
    with held_restore_lock(data):
        refused = run_cli(*restore_cli(data, usb, words, secret))
        assert refused.returncode == 2, refused.stderr
        assert "another restore is running in" in refused.stderr
        assert "une autre restauration est en cours" in refused.stderr
        assert (staging / "archive.db").read_bytes().startswith(b"being written")
        assert not (data / "archive.db").exists() and not (data / "keystore.json").exists()
        assert (data / ".restore.lock").exists()  # the other restore's, left as it was
    restored = run_cli(*restore_cli(data, usb, words, secret))
    assert restored.returncode == 0, restored.stderr
    assert not staging.exists() and not (data / ".restore.lock").exists()
    check = run_cli("verify", "--data", str(data), "--passphrase-file", str(secret))
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_restore_that_died_between_its_two_moves_says_how_to_go_on(tmp_path: Path) -> None:
    """blobs/ moved into place, archive.db not (power cut): the next restore says what
    to move aside instead of "already holds an archive" forever; done, it restores."""
    usb, words, secret = _one_backup(tmp_path)
    data = tmp_path / "new-box"
    blobs = data / "blobs"
    (blobs / "ab").mkdir(parents=True)
    (blobs / "ab" / "abcdef").write_bytes(b"an encrypted blob the dead restore moved")
    refused = run_cli(*restore_cli(data, usb, words, secret))
    assert refused.returncode == 2, refused.stderr
    expected = f"mv {blobs} {blobs}.half-restored"
    assert "stopped half-way" in refused.stderr and expected in refused.stderr
    assert "s’est arrêtée en cours" in refused.stderr
    assert (blobs / "ab" / "abcdef").is_file()  # nothing removed for the user
    blobs.rename(blobs.with_name("blobs.half-restored"))  # what the message says to do
    restored = run_cli(*restore_cli(data, usb, words, secret))
    assert restored.returncode == 0, restored.stderr
    assert (data / "archive.db").is_file() and (data / "keystore.json").is_file()


async def test_the_wizard_restore_refuses_while_a_command_restores(
    source: Source,  # noqa: F811
    fresh: Box,  # noqa: F811
    aiohttp_client: AiohttpClient,
) -> None:
    assert (await back_up(source)).state is JobState.DONE
    data_dir = fresh.config.data_dir
    client = await aiohttp_client(web_app(fresh), headers={"Accept-Language": "en"})
    staging = another_restores_staging(data_dir)
    with held_restore_lock(data_dir):
        failed = await restore_through_wizard(client, source.words, source.usb)
        assert failed.state is JobState.FAILED
        page = await (await client.get("/setup/restored")).text()
        assert "Another restore (from a terminal or another page) is running" in page
        assert (staging / "archive.db").read_bytes().startswith(b"being written")
        assert fresh.phase is BoxPhase.UNINITIALISED
        assert not (data_dir / "archive.db").exists()
    retried = await restore_through_wizard(client, source.words, source.usb)
    assert retried.state is JobState.DONE, retried.error
    assert phase_of(fresh) is BoxPhase.READY and fresh.fingerprint == source.box.fingerprint
    assert not staging.exists()
