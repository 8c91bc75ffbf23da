"""Unlocking after an upgrade migrates the archive off the event loop (review L3).

A migration step may take minutes on a Pi (migration 9 builds an index over every
record). Run on the loop, it froze the web UI and the panel and starved systemd's
watchdog, which killed the box mid-migration at every start. Here a real archive
at the previous schema is unlocked by a real box on loopback; the migration's own
SQL is slowed at the SQLite edge (a progress handler installed around the real
step, in whichever thread runs it): each VM step waits up to 10 ms until the test
lets it go. That is honest: the box's code runs unchanged, the migration is the
shipped one in its own transaction, and on a loop-bound migration the web UI, the
control socket and the watchdog pings all stop (checked: the tests fail so).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from e2e_helpers import Clock, WebAdmin, prepare_data_dir
from strongroom.appliance.sdnotify import Notifier
from strongroom.archive import db, store
from strongroom.archive.db import Connection
from strongroom.archive.errors import SchemaMigrationFailed
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.box import INTERRUPT_EVERY_S, Box
from strongroom.config import BoxConfig
from strongroom.control import call
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom_panel.state import BoxState
from support.wait import until
from test_cli_identity import run_cli
from web_helpers import ADMIN_PASSWORD

PREVIOUS = SCHEMA_VERSION - 1
REPO = Path(__file__).resolve().parent.parent
# systemd's WatchdogSec= for these tests: the box pings every half of it.
WATCHDOG_S = 1.0
# A loop-bound migration (the bug) ends on its own after this, so the test fails
# on its assertions instead of hanging.
HOLD_AT_MOST_S = 20.0


@dataclass
class SlowMigration:
    """Slows the real migration steps' SQL until released; counts the steps started."""

    released: threading.Event = field(default_factory=threading.Event)
    steps: list[int] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_step = db._migrate_step
        hold_until = time.monotonic() + HOLD_AT_MOST_S

        def crawl() -> int:
            if time.monotonic() < hold_until:
                self.released.wait(0.01)
            return 0  # 0: go on (SQLite still honours interrupt() between calls)

        def slow_step(conn: Connection, version: int) -> None:
            self.steps.append(version)
            self.threads.add(threading.current_thread().name)
            conn.set_progress_handler(crawl, 1)
            try:
                real_step(conn, version)
            finally:
                conn.set_progress_handler(None, 1)

        monkeypatch.setattr(db, "_migrate_step", slow_step)


class WatchdogListener:
    """systemd's side of $NOTIFY_SOCKET: when each WATCHDOG=1 ping arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.pings: list[float] = []
        self.statuses: list[str] = []  # what `systemctl status` shows, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            if data == b"WATCHDOG=1":
                self.pings.append(time.monotonic())
            elif data.startswith(b"STATUS="):
                self.statuses.append(data[len(b"STATUS=") :].decode())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def longest_gap(self, since: float, until_: float) -> float:
        """The longest time without a ping within [since, until_]."""
        marks = [since, *(t for t in self.pings if since < t < until_), until_]
        return max(b - a for a, b in itertools.pairwise(marks))


@pytest.fixture
def slow() -> Iterator[SlowMigration]:
    """Installed by each test once its old archive is built (building it migrates too)."""
    slow = SlowMigration()
    yield slow
    slow.released.set()


@pytest.fixture
def watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WatchdogListener]:
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1_000_000)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    listener = WatchdogListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


async def box_at_previous_schema(tmp_path: Path, *, keyfile: Path | None = None) -> BoxConfig:
    """A box made by the release before this one: its archive one migration behind."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "SCHEMA_VERSION", PREVIOUS)
        config = await prepare_data_dir(tmp_path / "box", keyfile=keyfile)
    assert on_disk_schema(config) == PREVIOUS
    return config


def on_disk_schema(config: BoxConfig) -> int:
    conn = db.connect(
        config.data_dir / "archive.db", Box(config).keys_for(ADMIN_PASSWORD).archive_key
    )
    try:
        return db.schema_version(conn)
    finally:
        conn.close()


def runtime_for(config: BoxConfig, watchdog: WatchdogListener) -> BoxRuntime:
    notifier = Notifier({"NOTIFY_SOCKET": str(watchdog.path)})
    return BoxRuntime(
        config, clock=Clock(), pin_factory=MockFactory(pin_class=MockPWMPin), notifier=notifier
    )


def phase_of(runtime: BoxRuntime) -> BoxPhase:
    return runtime.box.phase


def panel_state(runtime: BoxRuntime) -> BoxState | None:
    return runtime.panel.state if runtime.panel is not None else None


@dataclass
class MigratingAtStart:
    """An unattended box of the release before this one (its key file on a USB key),
    started: it migrates its archive at start, one slow step (`slow`) the test lets go."""

    config: BoxConfig
    runtime: BoxRuntime
    starting: asyncio.Task[None]
    admin: WebAdmin


@pytest.fixture
async def migrating_at_start(
    tmp_path: Path, slow: SlowMigration, watchdog: WatchdogListener, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MigratingAtStart]:
    (tmp_path / "usb").mkdir()
    config = await box_at_previous_schema(tmp_path, keyfile=tmp_path / "usb" / "unlock.key")
    slow.install(monkeypatch)
    runtime = runtime_for(config, watchdog)
    starting = asyncio.create_task(runtime.start())
    admin: WebAdmin | None = None
    try:
        await until(lambda: runtime.box.phase is BoxPhase.UPDATING, 10, "the migration")
        admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
        yield MigratingAtStart(config, runtime, starting, admin)
    finally:
        slow.released.set()  # a test that failed half-way leaves no step waiting
        if admin is not None:
            await admin.close()
        await asyncio.wait({starting}, timeout=30)
        await runtime.stop()


async def test_unlock_page_panel_status_and_watchdog_carry_on_while_the_archive_migrates(
    tmp_path: Path, slow: SlowMigration, watchdog: WatchdogListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await box_at_previous_schema(tmp_path)
    slow.install(monkeypatch)
    runtime = runtime_for(config, watchdog)
    await runtime.start()
    admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
    try:
        assert phase_of(runtime) is BoxPhase.LOCKED
        status, _, location = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        # The passphrase was right: the answer comes at once, to the "updating" page.
        assert (status, location) == (303, "/unlock")
        assert runtime.box.phase is BoxPhase.UPDATING
        started = time.monotonic()
        status, page = await admin.get("/unlock")
        assert status == 200 and "Updating the archive…" in page
        assert f"schema {PREVIOUS} to {SCHEMA_VERSION}" in page
        assert 'http-equiv="refresh"' in page and 'name="passphrase"' not in page
        admin.http.headers["Accept-Language"] = "fr"
        status, page = await admin.get("/unlock")
        assert status == 200 and "Mise à jour de l'archive…" in html.unescape(page)
        admin.http.headers["Accept-Language"] = "en"
        # Any other page leads to the same one, as while locked.
        status, _ = await admin.get("/records")
        assert status == 303
        # The panel shows its own busy pattern, not LOCKED (nor a frozen BOOTING).
        await until(lambda: panel_state(runtime) is BoxState.UPDATING, what="UPDATING")
        # `strongroom status` (the control socket) says so too.
        code, body = await call(config.data_dir, "GET", "/status")
        assert code == 200 and body["phase"] == "updating"
        assert body["migration"] == [PREVIOUS, SCHEMA_VERSION]
        # The box keeps its name meanwhile: the fingerprint (mDNS's -XXXX suffix and
        # TXT record, the address) is the keystore's, as while locked.
        fingerprint = Box(config).keystore().fingerprint
        assert fingerprint and runtime.box.fingerprint == fingerprint
        assert body["fingerprint"] == fingerprint
        # A second unlock meanwhile is refused clearly, and runs nothing twice.
        status, page, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 409 and "Updating the archive…" in page
        # systemd keeps hearing from the loop for a few watchdog periods.
        await until(lambda: len(watchdog.pings) >= 4 and watchdog.pings[-4] > started, 10)
        migrating_until = time.monotonic()
        assert runtime.box.phase is BoxPhase.UPDATING  # still held: the window was real
        assert watchdog.longest_gap(started, migrating_until) < WATCHDOG_S
        assert slow.steps == [SCHEMA_VERSION] and "MainThread" not in slow.threads

        slow.released.set()
        await until(lambda: runtime.box.phase is BoxPhase.READY, 10, "the box to open")
        await until(lambda: panel_state(runtime) is BoxState.READY, what="READY")
        status, _ = await admin.get("/unlock")
        assert status == 303  # unlocked: the page sends to the login
        await until(lambda: "box.unlock" in audit_actions(runtime), what="the unlock's audit")
        assert slow.steps == [SCHEMA_VERSION]
    finally:
        await admin.close()
        await runtime.stop()
    assert on_disk_schema(config) == SCHEMA_VERSION


def audit_actions(runtime: BoxRuntime) -> list[str]:
    conn = runtime.box.require_archive().reader()
    try:
        return [str(r[0]) for r in conn.execute("SELECT action FROM audit_events")]
    finally:
        conn.close()


async def test_an_unattended_box_serves_while_it_migrates_at_start(
    migrating_at_start: MigratingAtStart, slow: SlowMigration, watchdog: WatchdogListener
) -> None:
    box = migrating_at_start
    runtime = box.runtime
    started = time.monotonic()
    status, page = await box.admin.get("/unlock")
    assert status == 200 and "Updating the archive…" in page
    await until(lambda: panel_state(runtime) is BoxState.UPDATING, what="UPDATING")
    await until(lambda: len(watchdog.pings) >= 4 and watchdog.pings[-4] > started, 10)
    assert watchdog.longest_gap(started, time.monotonic()) < WATCHDOG_S
    assert not box.starting.done()
    slow.released.set()
    await asyncio.wait_for(box.starting, 30)
    assert runtime.box.phase is BoxPhase.READY
    await runtime.stop()
    assert on_disk_schema(box.config) == SCHEMA_VERSION


async def test_stopping_mid_migration_leaves_the_previous_schema_and_the_next_start_migrates(
    tmp_path: Path, slow: SlowMigration, watchdog: WatchdogListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = await box_at_previous_schema(tmp_path)
    slow.install(monkeypatch)
    runtime = runtime_for(config, watchdog)
    await runtime.start()
    admin = WebAdmin(f"http://127.0.0.1:{runtime.port}")
    try:
        status, _, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 303 and runtime.box.phase is BoxPhase.UPDATING
    finally:
        await admin.close()
        # systemctl stop while migrating: the step is interrupted, not waited for.
        await runtime.stop()
    assert not slow.released.is_set()  # it never ran at full speed
    assert runtime.box.archive is None
    assert on_disk_schema(config) == PREVIOUS  # the step rolled back whole

    slow.released.set()
    again = runtime_for(config, watchdog)
    await again.start()
    try:
        again.box.unlock(ADMIN_PASSWORD)  # the CLI's way: in its own thread, no loop to keep
        assert again.box.phase is BoxPhase.READY
    finally:
        await again.stop()
    assert on_disk_schema(config) == SCHEMA_VERSION
    assert slow.steps == [SCHEMA_VERSION, SCHEMA_VERSION]


async def test_a_cli_command_on_a_stopped_box_says_it_is_updating_the_archive(
    tmp_path: Path,
) -> None:
    """Box stopped: the command opens the archive itself and migrates it first (in its
    own process, nothing waits on a loop); minutes on a Pi, so it says so."""
    config = await box_at_previous_schema(tmp_path)
    secret = tmp_path / "passphrase.txt"
    secret.write_text(ADMIN_PASSWORD + "\n")
    args = ("users", "--data", str(config.data_dir), "--passphrase-file", str(secret))
    listing = await asyncio.to_thread(run_cli, *args)
    assert listing.returncode == 0, listing.stderr
    assert "admin\tadmin\tactive" in listing.stdout
    said = (
        f"Mise à jour de l'archive… (schéma {PREVIOUS} → {SCHEMA_VERSION}) /"
        f" Updating the archive… (schema {PREVIOUS} to {SCHEMA_VERSION})"
    )
    assert said in listing.stderr
    # The line operations.md shows ("Upgrades") is this one, for its own schemas.
    shown = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "`Mise à jour de l'archive… (schéma 8 → 9) / Updating the archive… (schema 8 to 9)`" in (
        " ".join(shown.split())
    )
    assert on_disk_schema(config) == SCHEMA_VERSION
    again = await asyncio.to_thread(run_cli, *args)  # nothing left to migrate: silent
    assert again.returncode == 0 and "Updating the archive" not in again.stderr


async def test_stopping_an_unattended_box_during_its_start_migration(
    migrating_at_start: MigratingAtStart, slow: SlowMigration
) -> None:
    """`systemctl stop` while the box migrates at start: the stop interrupts the step,
    the box says nothing is damaged, and the previous schema is whole."""
    runtime = migrating_at_start.runtime
    await runtime.stop()
    await asyncio.wait_for(migrating_at_start.starting, 30)
    assert not slow.released.is_set()  # it never ran at full speed
    assert runtime.integrity_ok and runtime.box.archive is None
    assert on_disk_schema(migrating_at_start.config) == PREVIOUS


async def test_stopping_while_a_failed_migration_lets_go_of_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step fails and the open closes its connection; the stop that comes before the
    worker thread is back must not trip over that closed connection (review L2)."""
    config = await box_at_previous_schema(tmp_path)
    failed, let_go = threading.Event(), threading.Event()

    def failing_step(conn: Connection, version: int) -> None:
        raise SchemaMigrationFailed(f"migration {version} failed; nothing changed")

    real_open = db.open_archive_db

    def open_then_linger(*args: Any, **kwargs: Any) -> Connection:
        try:
            return real_open(*args, **kwargs)
        except SchemaMigrationFailed:
            # Its connection is closed; the worker is not back yet (a busy Pi).
            failed.set()
            let_go.wait(20 * INTERRUPT_EVERY_S)
            raise

    monkeypatch.setattr(db, "_migrate_step", failing_step)
    monkeypatch.setattr(store, "open_archive_db", open_then_linger)
    box = Box(config)
    box.begin_open(box.keys_for(ADMIN_PASSWORD))
    try:
        await until(failed.is_set, 10, "the failed step")
        await box.stop()  # asks the closed connection to give up, several times over
    finally:
        let_go.set()
    assert box.phase is BoxPhase.LOCKED and box.archive is None
    assert on_disk_schema(config) == PREVIOUS


async def test_what_operations_md_tells_an_operator_to_look_at_when_a_migration_seems_hung(
    migrating_at_start: MigratingAtStart, slow: SlowMigration, watchdog: WatchdogListener
) -> None:
    """docs/operations.md, Upgrades, "A migration that seems hung": an appliance after
    an upgrade (unattended) migrates at start; `systemctl status strongroom` says
    `updating at …`, `strongroom status` shows the migration (plain and JSON), the
    unlock page says it is updating, and the watchdog keeps being fed."""
    box = migrating_at_start
    runtime = box.runtime
    started = time.monotonic()
    # systemctl status strongroom: the STATUS= line systemd was sent.
    await until(
        lambda: any(s.startswith("updating at ") for s in watchdog.statuses),
        what="STATUS=updating at …",
    )
    assert watchdog.statuses[-1].startswith(f"updating at {runtime.url}")
    data = str(box.config.data_dir)
    plain = await asyncio.to_thread(run_cli, "status", "--data", data)
    assert plain.returncode == 0, plain.stderr
    assert "state: updating" in plain.stdout
    assert f"archive update under way: schema {PREVIOUS} to {SCHEMA_VERSION}" in plain.stdout
    as_json = await asyncio.to_thread(run_cli, "status", "--json", "--data", data)
    assert json.loads(as_json.stdout)["migration"] == [PREVIOUS, SCHEMA_VERSION]
    status, page = await box.admin.get("/unlock")
    assert status == 200 and "Updating the archive…" in page
    # "does not get the box killed": the loop feeds the watchdog all along.
    await until(lambda: len(watchdog.pings) >= 4 and watchdog.pings[-4] > started, 10)
    assert watchdog.longest_gap(started, time.monotonic()) < WATCHDOG_S
    assert not box.starting.done() and runtime.box.phase is BoxPhase.UPDATING
    slow.released.set()
    await asyncio.wait_for(box.starting, 30)
    await until(lambda: watchdog.statuses[-1].startswith("ready at "), what="ready")
    plain = await asyncio.to_thread(run_cli, "status", "--data", data)
    assert "state: ready" in plain.stdout and "archive update" not in plain.stdout
