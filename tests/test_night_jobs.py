"""The night jobs in attended mode: the timers' own command lines, against a real box.

The box runs as `strongroom serve` in its own process (attended: locked after
start until someone unlocks it on the web UI); each job is started with the
ExecStart= line of its shipped systemd unit, only the binary and the config
path swapped for this checkout's. A locked box skips (exit 75, audited after
the unlock); an unlocked box does the work; a failure shows on the dashboard,
in the audit trail, in the STATUS= line `systemctl status` prints, and on the
panel (in-process test with mock pins).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from e2e_helpers import WebAdmin, prepare_data_dir, start_box, until
from strongroom.config import load_config
from strongroom.control import call
from strongroom.office import backup
from strongroom_panel.state import BoxState
from web_helpers import ADMIN_PASSWORD

REPO = Path(__file__).resolve().parents[1]
PRODUCTION_BINARY = "/opt/strongroom/venv/bin/strongroom"
PRODUCTION_CONFIG = "/etc/strongroom/box.toml"
STRONGROOM = str(Path(sys.executable).parent / "strongroom")


def timer_command(unit: str, config: Path) -> list[str]:
    """The unit's ExecStart= exactly, with this checkout's binary and the test's box.toml."""
    lines = (REPO / "systemd" / unit).read_text(encoding="utf-8").splitlines()
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == PRODUCTION_BINARY and PRODUCTION_CONFIG in argv, exec_start
    return [
        STRONGROOM if a == PRODUCTION_BINARY else str(config) if a == PRODUCTION_CONFIG else a
        for a in argv
    ]


async def run_timer_job(unit: str, config: Path) -> subprocess.CompletedProcess[str]:
    # No passphrase anywhere: stdin is empty, as under systemd.
    return await asyncio.to_thread(
        subprocess.run,
        timer_command(unit, config),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NotifySocket:
    """What systemd would receive on $NOTIFY_SOCKET from the service."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append(self.sock.recv(4096).decode())
        return self.messages

    def last_status(self) -> str:
        statuses = [m for m in self.drain() if m.startswith("STATUS=")]
        return statuses[-1].removeprefix("STATUS=") if statuses else ""


@pytest.fixture
async def attended_box(tmp_path: Path) -> AsyncIterator[tuple[Path, str, NotifySocket, Path]]:
    """`strongroom serve` in attended mode, locked; yields (box.toml, url, notify, target)."""
    config = await prepare_data_dir(tmp_path / "data")
    target = tmp_path / "backup-disk"
    target.mkdir()
    port = free_port()
    box_toml = tmp_path / "box.toml"
    box_toml.write_text(
        f'data_dir = "{config.data_dir}"\nhost = "127.0.0.1"\nport = {port}\n'
        f'mock_gpio = true\nunlock_mode = "attended"\nbackup_target = "{target}"\n',
        encoding="utf-8",
    )
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
    process = await asyncio.create_subprocess_exec(
        STRONGROOM,
        "serve",
        "--config",
        str(box_toml),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await until(lambda: "READY=1" in notify.drain(), 30, "the box to notify READY=1")
        yield box_toml, f"http://127.0.0.1:{port}", notify, target
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        notify.sock.close()


async def test_timer_jobs_skip_on_a_locked_box_then_run_after_an_unlock(
    attended_box: tuple[Path, str, NotifySocket, Path],
) -> None:
    box_toml, url, notify, target = attended_box
    config = load_config(Path("/nonexistent"), box_toml)
    # Locked: skipped with the reason, non-zero exit (systemd shows the unit failed).
    skipped = await run_timer_job("strongroom-backup.service", box_toml)
    assert skipped.returncode == 75, skipped.stdout + skipped.stderr
    assert "skipped" in skipped.stderr and "locked" in skipped.stderr
    assert "wrong passphrase" not in skipped.stderr
    assert backup.list_sets(target) == []
    assert "backup skipped" in notify.last_status()

    admin = WebAdmin(url)
    try:
        status, _, location = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 303, location
        # Unlocked over the web: each timer's own command line now does the work.
        done = await run_timer_job("strongroom-backup.service", box_toml)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "backup set" in done.stdout
        assert len(backup.list_sets(target)) == 1
        retention = await run_timer_job("strongroom-retention.service", box_toml)
        assert retention.returncode == 0, retention.stdout + retention.stderr
        assert "Retention run: 0 records destroyed" in retention.stdout
        verify = await run_timer_job("strongroom-verify.service", box_toml)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "OK: the archive verifies" in verify.stdout
        assert "failed" not in notify.last_status() and "skipped" not in notify.last_status()

        # The backup disk is gone: the job fails, and says so everywhere.
        target.rename(target.with_name("unplugged"))
        failed = await run_timer_job("strongroom-backup.service", box_toml)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "backup failed" in failed.stderr and "not mounted" in failed.stderr
        assert "backup failed" in notify.last_status()
        _, answer = await call(config.data_dir, "GET", "/status")
        assert answer["night_jobs"]["backup"]["outcome"] == "failed"

        await admin.login()
        page_status, page = await admin.get("/dashboard")
        assert page_status == 200
        assert 'data-job="backup" data-outcome="failed"' in page
        assert 'data-job="verify" data-outcome="done"' in page
        assert 'data-job="retention" data-outcome="done"' in page
        assert "not mounted" in page
        # The audit trail holds every run, the skipped one included (written at unlock).
        audit_status, audit = await admin.get("/audit?actor=timer")
        assert audit_status == 200
    finally:
        await admin.close()
    runs = re.findall(r'data-action="(nightjob\.\w+)" data-target="(\w+)"', audit)
    assert list(reversed(runs)) == [
        ("nightjob.skipped", "backup"),
        ("nightjob.done", "backup"),
        ("nightjob.done", "retention"),
        ("nightjob.done", "verify"),
        ("nightjob.failed", "backup"),
    ]


async def test_a_failed_night_job_shows_on_the_panel_until_it_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = await prepare_data_dir(tmp_path / "data")
    running = await start_box(config)
    try:
        assert running.panel_state() is BoxState.READY
        with caplog.at_level(logging.INFO, logger="strongroom.appliance.nightjobs"):
            status, answer = await call(config.data_dir, "POST", "/jobs/backup")
        assert status == 500 and answer["outcome"] == "failed"
        assert "no backup target" in answer["summary"]
        # The journal says it once, in the words the dashboard shows: a job that failed
        # for a reason it names is no crash (it printed a traceback before that line).
        said = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
        assert said == [(logging.ERROR, f"night job backup failed: {answer['summary']}", None)]
        await until(lambda: running.panel_state() is BoxState.JOB_FAILED, what="the fault")
        await running.led_blinks("alert")
        target = tmp_path / "disk"
        target.mkdir()
        status, answer = await call(
            config.data_dir, "POST", "/jobs/backup", {"target": str(target)}
        )
        assert status == 200, answer
        await until(lambda: running.panel_state() is BoxState.READY, what="the fault to clear")
    finally:
        await running.stop()


async def test_a_failure_from_before_a_restart_still_shows_after_the_unlock(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "data")
    running = await start_box(config)
    try:
        outcome = await running.runtime.night_jobs.run("backup")
        assert outcome.outcome == "failed"
    finally:
        await running.stop()
    again = await start_box(config, unlock=False)
    try:
        assert again.panel_state() is BoxState.LOCKED
        again.box.unlock(ADMIN_PASSWORD)
        await until(lambda: again.panel_state() is BoxState.JOB_FAILED, what="the old fault")
    finally:
        await again.stop()
