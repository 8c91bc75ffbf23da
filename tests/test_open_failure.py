"""A damaged archive vs. anything else that stops it opening at unlock.

Only a damaged file is an integrity failure ("restore from a backup"): a restore
loses what was written since the backup. A database another program holds locked,
a full disk, a read-only or unreachable file is not damage: the panel shows an
error, the unlock page, `strongroom status` and the CLI say what to put right.
Each case is a real file: a second SQLCipher connection holding the write lock,
chmod 0400 / 0000 (the CLI run without the capability to override file modes),
a full tmpfs, a truncated or garbled file.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from e2e_helpers import Clock, WebAdmin, prepare_data_dir
from strongroom.appliance.sdnotify import Notifier
from strongroom.archive import db
from strongroom.archive.schema import MIGRATIONS, SCHEMA_VERSION
from strongroom.box import Box
from strongroom.config import BoxConfig
from strongroom.control import call
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom_panel.state import BoxState
from support.small_disk import mounted_tmpfs
from support.wait import until
from test_cli_identity import run_cli
from web_helpers import ADMIN_PASSWORD

RESTORE = "Restore it from a backup"
NOT_DAMAGED = "Nothing is damaged"


async def unattended_box(tmp_path: Path) -> BoxConfig:
    (tmp_path / "usb").mkdir()
    return await prepare_data_dir(tmp_path / "box", keyfile=tmp_path / "usb" / "unlock.key")


def runtime_for(config: BoxConfig) -> BoxRuntime:
    return BoxRuntime(
        config,
        clock=Clock(),
        pin_factory=MockFactory(pin_class=MockPWMPin),
        notifier=Notifier({}),
    )


def panel_state(runtime: BoxRuntime) -> BoxState | None:
    return runtime.panel.state if runtime.panel is not None else None


def archive_key(config: BoxConfig) -> bytes:
    return Box(config).keys_for(ADMIN_PASSWORD).archive_key


async def test_a_locked_archive_is_an_error_not_an_integrity_failure_and_unlocks_once_freed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await unattended_box(tmp_path)
    # Another program (a `sqlcipher` shell, a copy tool) holds the write lock.
    holder = db.connect(config.archive_path, archive_key(config))
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.3)  # the box waits 30 s before giving up
    runtime = runtime_for(config)
    await runtime.start()
    admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
    try:
        assert runtime.box.phase is BoxPhase.LOCKED and runtime.box.archive is None
        await until(lambda: panel_state(runtime) is BoxState.ERROR, what="the panel's ERROR")
        assert runtime.integrity_ok and runtime.integrity is None  # not a damaged archive
        status, page = await admin.get("/unlock")
        page = html.unescape(page)
        assert status == 200 and "Another program holds the archive locked" in page
        assert NOT_DAMAGED in page and RESTORE not in page
        admin.http.headers["Accept-Language"] = "fr"
        _, page = await admin.get("/unlock")
        assert "Un autre programme tient l'archive verrouillée" in html.unescape(page)
        admin.http.headers["Accept-Language"] = "en"
        assert "archive: Another program holds the archive locked" in runtime.status_line
        code, body = await call(config.data_dir, "GET", "/status")
        assert code == 200 and body["archive_problem"]["kind"] == "locked"
        said = await asyncio.to_thread(run_cli, "status", "--data", str(config.data_dir))
        assert said.returncode == 0, said.stderr
        assert "archive not opened (locked): Another program holds" in said.stdout

        holder.execute("ROLLBACK")  # the other program lets go: an admin unlocks by hand
        status, _, location = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert (status, location) == (303, "/login")
        await until(lambda: panel_state(runtime) is BoxState.READY, what="READY")
        assert "archive:" not in runtime.status_line
        code, body = await call(config.data_dir, "GET", "/status")
        assert code == 200 and body["phase"] == "ready" and body["archive_problem"] is None
    finally:
        holder.close()
        await admin.close()
        await runtime.stop()


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def garble_header(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(100)
        handle.write(os.urandom(200))


@pytest.mark.parametrize("damage", [truncate, garble_header], ids=["truncated", "garbled"])
async def test_a_damaged_archive_is_an_integrity_failure_that_sends_to_a_backup(
    tmp_path: Path, damage: object
) -> None:
    config = await unattended_box(tmp_path)
    assert callable(damage)
    damage(config.archive_path)
    runtime = runtime_for(config)
    await runtime.start()
    admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
    try:
        assert runtime.box.archive is None
        assert runtime.integrity is not None and not runtime.integrity.ok
        assert "restore from a backup" in runtime.integrity.problems[0]
        assert panel_state(runtime) is BoxState.INTEGRITY_FAILURE
        status, page = await admin.get("/unlock")
        page = html.unescape(page)
        assert status == 200 and "The archive file is damaged" in page and RESTORE in page
        assert NOT_DAMAGED not in page
        code, body = await call(config.data_dir, "GET", "/status")
        assert code == 200 and body["archive_problem"]["kind"] == "damaged"
    finally:
        await admin.close()
        await runtime.stop()


def run_cli_without_override(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as the service's user would run it: root loses CAP_DAC_OVERRIDE."""
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    command = [*(drop if os.geteuid() == 0 else []), sys.executable, "-m", "strongroom", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def stopped_box(tmp_path: Path) -> Iterator[tuple[BoxConfig, Path]]:
    config = asyncio.run(prepare_data_dir(tmp_path / "box"))
    secret = tmp_path / "passphrase.txt"
    secret.write_text(ADMIN_PASSWORD + "\n")
    yield config, secret
    config.archive_path.chmod(0o600)


@pytest.mark.parametrize(
    ("mode", "english", "french"),
    [
        (0o400, "the file or its storage is read-only", "est en lecture seule"),
        (0o000, "its owner or permissions changed", "ses droits ont changé"),
    ],
    ids=["read-only", "no-access"],
)
def test_the_cli_says_a_read_only_or_unreachable_archive_is_not_damaged(
    stopped_box: tuple[BoxConfig, Path], mode: int, english: str, french: str
) -> None:
    config, secret = stopped_box
    before = hashlib.sha256(config.archive_path.read_bytes()).hexdigest()
    config.archive_path.chmod(mode)
    said = run_cli_without_override(
        "users", "--data", str(config.data_dir), "--passphrase-file", str(secret)
    )
    assert said.returncode != 0
    assert english in said.stderr and NOT_DAMAGED in said.stderr, said.stderr
    assert french in said.stderr and "Rien n'est endommagé" in said.stderr
    assert RESTORE not in said.stderr and "Traceback" not in said.stderr
    config.archive_path.chmod(0o600)
    assert hashlib.sha256(config.archive_path.read_bytes()).hexdigest() == before
    again = run_cli("users", "--data", str(config.data_dir), "--passphrase-file", str(secret))
    assert again.returncode == 0 and "admin" in again.stdout  # nothing was lost


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only), unmounted afterwards."""
    with mounted_tmpfs(tmp_path / "small-disk", "2m") as mount_point:
        yield mount_point


def test_the_cli_says_a_full_disk_is_not_damage(
    stopped_box: tuple[BoxConfig, Path], full_disk: Path
) -> None:
    config, secret = stopped_box
    data = full_disk / "box"
    subprocess.run(["cp", "-a", str(config.data_dir), str(data)], check=True)
    ballast = full_disk / "ballast"
    with ballast.open("wb", buffering=0) as handle:  # fill what is left
        try:
            while handle.write(b"\0" * 4096):
                pass
        except OSError:
            pass
    assert os.statvfs(full_disk).f_bavail == 0
    said = run_cli("users", "--data", str(data), "--passphrase-file", str(secret))
    assert said.returncode != 0
    assert "The storage is full" in said.stderr and NOT_DAMAGED in said.stderr, said.stderr
    assert "Le stockage est plein" in said.stderr and RESTORE not in said.stderr
    ballast.unlink()  # room again: the same archive opens, nothing lost
    again = run_cli("users", "--data", str(data), "--passphrase-file", str(secret))
    assert again.returncode == 0 and "admin" in again.stdout, again.stderr


PREVIOUS = SCHEMA_VERSION - 1
FAILING_SQL = {
    # What a failing migration step raises, re-raised raw by db._migrate_step.
    "sql-error": "INSERT INTO no_such_table VALUES (1);",
    "constraint": (
        "CREATE TEMP TABLE migration_probe (x INTEGER PRIMARY KEY);"
        " INSERT INTO migration_probe VALUES (1), (1);"
    ),
}


@pytest.mark.parametrize("failing", FAILING_SQL.values(), ids=FAILING_SQL.keys())
async def test_a_migration_that_fails_at_unlock_is_not_called_damage_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A step that fails (SQLITE_ERROR, SQLITE_CONSTRAINT) rolls back whole: the file is
    sound, so the page says the update starts again, never "restore from a backup"
    (which would lose what was written since), and the panel is no integrity failure."""
    (tmp_path / "usb").mkdir()
    with pytest.MonkeyPatch.context() as patch:  # a box made by the release before
        patch.setattr(db, "SCHEMA_VERSION", PREVIOUS)
        config = await prepare_data_dir(tmp_path / "box", keyfile=tmp_path / "usb" / "unlock.key")
    before = hashlib.sha256(config.archive_path.read_bytes()).hexdigest()
    steps = list(MIGRATIONS)
    steps[SCHEMA_VERSION - 1] = f"{steps[SCHEMA_VERSION - 1]}\n{failing}"
    monkeypatch.setattr(db, "MIGRATIONS", steps)
    runtime = runtime_for(config)
    await runtime.start()
    admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
    try:
        assert runtime.box.phase is BoxPhase.LOCKED and runtime.box.archive is None
        assert runtime.box.open_failure is not None
        assert runtime.integrity_ok and runtime.integrity is None
        # Not damage, but not silence either: the front panel shows an error and the
        # status line names it, so an unattended box after a bad upgrade does not
        # merely look locked.
        await until(lambda: panel_state(runtime) is BoxState.ERROR, what="the panel's ERROR")
        assert "archive: The archive could not be opened" in runtime.status_line
        status, page = await admin.get("/unlock")
        page = html.unescape(page)
        assert status == 200 and "An unfinished update is undone and starts again" in page
        assert "The archive file is damaged" not in page and RESTORE not in page
        code, body = await call(config.data_dir, "GET", "/status")
        assert code == 200 and body["archive_problem"]["kind"] == "not_opened"
        assert "An unfinished update is undone" in body["archive_problem"]["text"]
        assert body["archive_problem"]["cause"] in ("OperationalError", "IntegrityError")
    finally:
        await admin.close()
        await runtime.stop()
    assert hashlib.sha256(config.archive_path.read_bytes()).hexdigest() == before
    conn = db.connect(config.archive_path, archive_key(config))
    try:
        assert db.schema_version(conn) == PREVIOUS  # the step rolled back whole
    finally:
        conn.close()
