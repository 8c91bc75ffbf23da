"""A destruction's scrub held up by a long reader, on a running box: the office manager
and the auditor see that destroyed records are not yet wiped from disk (dashboard,
Integrity and certificates pages in FR and EN, `strongroom status`, systemd's status
line) until the box's tick finishes the scrub, which it does once the reader lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from archive_helpers import new_phone
from e2e_helpers import WebAdmin, prepare_data_dir, until
from strongroom.appliance.sdnotify import Notifier
from strongroom.archive import writes
from strongroom.archive.scrub import pending_marker
from strongroom.control import call
from strongroom.office import retention
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.runtime import BoxRuntime
from support.box import T0
from support.records import signed_message
from web_helpers import ADMIN_PASSWORD

NOTICE_EN = "Destroyed records are not yet wiped from the free space and the WAL"
NOTICE_FR = "Des enregistrements détruits ne sont pas encore effacés de l’espace libre ni du WAL"
PAGES = ("/dashboard", "/integrity", "/office/certificates")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[BoxRuntime, WebAdmin, socket.socket]]:
    config = await prepare_data_dir(tmp_path / "box")
    status_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    status_socket.bind(str(tmp_path / "notify"))
    status_socket.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    runtime = BoxRuntime(config, pin_factory=MockFactory(pin_class=MockPWMPin), notifier=notifier)
    runtime.scrub_retry_ticks = 1  # the tick tries every second, not every 30 s
    await runtime.start()
    admin = WebAdmin(runtime.url)
    try:
        status, _, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 303
        await admin.login()
        yield runtime, admin, status_socket
    finally:
        await admin.close()
        await runtime.stop()
        status_socket.close()


def _records_due_for_destruction(runtime: BoxRuntime) -> None:
    """One message under a 30-day destroy policy, long past due; others that stay."""
    archive = runtime.box.require_archive()
    device_id, key = new_phone(archive)
    for n, (conv, peer) in enumerate([("client-martin", "M. Martin")] + [("autre", "X")] * 20):
        record = signed_message(key, f"message {n}", conv=conv, at=T0 + n, peer=peer)
        archive.write(writes.store_record(record, device_id, "maitre.durand"))
    spec = PolicySpec("court", Duration(30, "days"), "record_date", "destroy")
    policy = archive.write(create_policy(spec, "admin"))
    archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))


def _last_status_line(status_socket: socket.socket) -> str:
    lines = []
    with contextlib.suppress(BlockingIOError):
        while True:
            lines.append(status_socket.recv(4096).decode())
    statuses = [line for line in lines if line.startswith("STATUS=")]
    return statuses[-1] if statuses else ""


async def _page(admin: WebAdmin, path: str, language: str) -> str:
    url = admin.base_url + path
    async with admin.http.get(url, headers={"Accept-Language": language}) as response:
        assert response.status == 200, (path, response.status)
        return await response.text()


async def test_a_held_scrub_is_shown_until_the_tick_finishes_it(
    running: tuple[BoxRuntime, WebAdmin, socket.socket],
) -> None:
    runtime, admin, status_socket = running
    archive = runtime.box.require_archive()
    await asyncio.to_thread(_records_due_for_destruction, runtime)
    marker = pending_marker(archive.path)
    wal = archive.path.with_name(archive.path.name + "-wal")

    # A long read (an export, a backup, a phone's restore) holds its snapshot.
    reader = archive.reader()
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM records").fetchone()
    try:
        result = await asyncio.to_thread(
            retention.run, archive, int(runtime.clock() * 1000), approver="dr.martin"
        )
        assert result.destruction.destroyed == 1
        assert marker.exists() and wal.stat().st_size > 0
        for path in PAGES:
            assert NOTICE_EN in await _page(admin, path, "en"), path
            assert 'id="scrub-pending"' in await _page(admin, path, "en"), path
        assert NOTICE_FR in await _page(admin, "/integrity", "fr")
        code, status = await call(runtime.config.data_dir, "GET", "/status")
        assert code == 200 and status["scrub_pending"] is not None
        assert "not yet wiped" in status["scrub_pending"]["notice"]
        await until(
            lambda: "not yet wiped" in _last_status_line(status_socket),
            what="systemd status line names the pending scrub",
        )
        assert marker.exists()  # the tick's tries fail while the reader holds the WAL
    finally:
        reader.execute("ROLLBACK")
        reader.close()

    # Released: the box's tick (not this test) finishes the scrub.
    await until(lambda: not marker.exists(), timeout_s=15.0, what="the tick finishes the scrub")
    assert not wal.exists() or wal.stat().st_size == 0
    for path in PAGES:
        page = await _page(admin, path, "en")
        assert 'id="scrub-pending"' not in page and NOTICE_EN not in page, path
    code, status = await call(runtime.config.data_dir, "GET", "/status")
    assert code == 200 and status["scrub_pending"] is None
