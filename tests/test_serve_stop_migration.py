"""`systemctl stop` while `strongroom serve` migrates the archive at start (review M2).

An unattended box opens its archive at start, and after an upgrade that migrates it:
minutes on a Pi. The stop systemd sends meanwhile (SIGTERM) must be a clean stop:
the migration gives up (its step rolls back whole), the service exits 0 with its
control socket removed, and the next start migrates. A real `strongroom serve`
process, a real archive one schema behind; the migration's SQL is slowed in that
process by a sitecustomize (as tests/test_unlock_migration.py does in its own),
each SQLite VM step waiting until the test lets it go (a file), or at most
HOLD_AT_MOST_S, so that a broken stop fails on its assertions instead of hanging.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.config import BoxConfig
from strongroom.control import socket_path
from support.wait import until
from test_night_jobs import free_port
from test_unlock_migration import PREVIOUS, box_at_previous_schema, on_disk_schema

STRONGROOM = str(Path(sys.executable).parent / "strongroom")
HOLD_AT_MOST_S = 20.0

SITECUSTOMIZE = f"""
import os, time
from strongroom.archive import db

_real_step = db._migrate_step
_release = os.environ["FXA_RELEASE"]
_steps = os.environ["FXA_STEPS"]
_hold_until = time.monotonic() + {HOLD_AT_MOST_S}


def _crawl():
    if time.monotonic() < _hold_until and not os.path.exists(_release):
        time.sleep(0.01)
    return 0  # go on: SQLite still honours interrupt() between calls


def _slow_step(conn, version):
    with open(_steps, "a") as out:
        out.write(f"{{version}}\\n")
    conn.set_progress_handler(_crawl, 1)
    try:
        _real_step(conn, version)
    finally:
        conn.set_progress_handler(None, 1)


db._migrate_step = _slow_step
"""


def box_toml(tmp_path: Path, config: BoxConfig) -> Path:
    path = tmp_path / "box.toml"
    path.write_text(
        f'data_dir = "{config.data_dir}"\nhost = "127.0.0.1"\nport = {free_port()}\n'
        f'mock_gpio = true\nunlock_mode = "unattended"\n'
        f'unlock_keyfile = "{config.unlock_keyfile}"\n',
        encoding="utf-8",
    )
    return path


async def serve(toml: Path, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            STRONGROOM, "serve", "--config", str(toml), env=env, stdout=out, stderr=out
        )


async def test_sigterm_during_the_start_migration_stops_cleanly_and_the_next_start_migrates(
    tmp_path: Path,
) -> None:
    (tmp_path / "usb").mkdir()
    config = await box_at_previous_schema(tmp_path, keyfile=tmp_path / "usb" / "unlock.key")
    toml = box_toml(tmp_path, config)
    slowdown = tmp_path / "slowdown"
    slowdown.mkdir()
    (slowdown / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    release, steps, log = tmp_path / "release", tmp_path / "steps", tmp_path / "serve.log"
    pythonpath = os.pathsep.join(p for p in (str(slowdown), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "FXA_RELEASE": str(release),
        "FXA_STEPS": str(steps),
    }
    process = await serve(toml, env, log)
    try:
        await until(steps.exists, 30, "the start's migration")
        await until(socket_path(config.data_dir).exists, 30, "the control socket")
        process.send_signal(signal.SIGTERM)  # `systemctl stop`
        rc = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = log.read_text(errors="replace")
    assert not release.exists()  # it never ran at full speed: the stop interrupted it
    assert rc == 0, output
    assert not socket_path(config.data_dir).exists(), output
    assert "interrupted by the stop" in output
    assert on_disk_schema(config) == PREVIOUS  # the step rolled back whole

    # The next start (no slow-down) migrates, unattended, and stops cleanly too.
    release.touch()
    again = await serve(toml, dict(os.environ), log)
    try:
        await until(lambda: on_disk_schema(config) == SCHEMA_VERSION, 60, "the migration")
        again.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(again.wait(), 30) == 0, log.read_text(errors="replace")
    finally:
        if again.returncode is None:
            again.kill()
            await again.wait()
    assert steps.read_text().split() == [str(SCHEMA_VERSION)]
    assert not socket_path(config.data_dir).exists()
