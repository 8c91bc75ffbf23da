"""tor runs only while reach is on (docs/operations.md): the helper's reload must
not fail while tor is stopped, since the switch unit starts tor afterwards and tor
then reads the files the helper wrote; and the page and `strongroom reach status`
say plainly when tor is stopped or its part of reach is not installed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from e2e_helpers import E2EBox, WebAdmin, prepare_data_dir, start_box
from reach_support import TorStandIn, box_with_reach_stand_in, cli, tor_files
from strongroom.reach.helper import helper_app, serve_helper
from strongroom.reach.settings import ReachSettings, load_settings, save_settings
from strongroom.reach.tor_control import TorControl
from strongroom.reach.tor_files import ReachHelperError, TorFiles, sighup_from_pidfile
from strongroom.reach.torrc import ServiceConfig


def _sighup_default() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_reloading_a_stopped_tor_is_a_no_op(tmp_path: Path) -> None:
    # No pid file: tor removes it when it stops.
    sighup_from_pidfile(tmp_path / "tor.pid")()
    # A stale pid file naming a pid no process can have (above the kernel's pid_max).
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    (tmp_path / "tor.pid").write_text(f"{pid_max + 1}\n")
    sighup_from_pidfile(tmp_path / "tor.pid")()


def test_a_stale_pid_file_naming_another_process_does_not_signal_it(tmp_path: Path) -> None:
    # The kernel gave tor's old pid to an unrelated process: it must not get SIGHUP.
    child = subprocess.Popen(["sleep", "60"])  # SIGHUP's default would end it
    pidfile = tmp_path / "tor.pid"
    try:
        pidfile.write_text(f"{child.pid}\n")
        sighup_from_pidfile(pidfile)()
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
    # Nor the helper itself.
    pidfile.write_text(f"{os.getpid()}\n")
    with pytest.raises(ReachHelperError, match="bad pid"):
        sighup_from_pidfile(pidfile)()


def test_a_running_tor_gets_sighup_and_a_damaged_pid_file_is_an_error(tmp_path: Path) -> None:
    # Stands in for tor: a program whose name is "tor"; SIGHUP's default ends it.
    tor = tmp_path / "tor"
    tor.symlink_to(shutil.which("sleep") or "/bin/sleep")
    # SIGHUP's default action even when this run ignores it (nohup, some CI
    # runners): an ignored disposition is inherited across exec.
    child = subprocess.Popen([str(tor), "60"], preexec_fn=_sighup_default)
    pidfile = tmp_path / "tor.pid"
    try:
        # The kernel names the child after its program a moment after Popen returns.
        comm = Path(f"/proc/{child.pid}/comm")
        deadline = time.monotonic() + 10
        while comm.read_text().strip() != "tor":
            assert time.monotonic() < deadline, comm.read_text()
            time.sleep(0.01)
        pidfile.write_text(f"{child.pid}\n")
        sighup_from_pidfile(pidfile)()
        assert child.wait(timeout=10) == -signal.SIGHUP
    finally:
        child.kill()
    pidfile.write_text("not a pid\n")
    with pytest.raises(ReachHelperError, match="could not reload tor"):
        sighup_from_pidfile(pidfile)()


# -- what the office manager is told when the tor part is missing or stopped ------------------


@pytest.fixture
async def box_without_tor(tmp_path: Path) -> AsyncIterator[tuple[E2EBox, web.AppRunner]]:
    """A real box and helper; tor's control socket is absent (tor stopped)."""
    files, _ = tor_files(tmp_path)
    helper_socket = tmp_path / "helper.sock"
    control = TorControl(tmp_path / "tor-control", tmp_path / "tor-cookie")
    runner = await serve_helper(helper_app(files, control), helper_socket)
    config = await prepare_data_dir(tmp_path / "box")
    save_settings(
        config.data_dir,
        ReachSettings(False, onion_socket=files.service.onion_socket, helper_socket=helper_socket),
    )
    box = await start_box(config)
    yield box, runner
    await box.stop()
    await runner.cleanup()


async def _page(box: E2EBox) -> str:
    admin = WebAdmin(box.url)
    try:
        await admin.login()
        status, page = await admin.get("/reach")
        assert status == 200
        return page
    finally:
        await admin.close()


async def test_status_says_plainly_when_tor_is_stopped_or_not_installed(
    box_without_tor: tuple[E2EBox, web.AppRunner],
) -> None:
    box, helper = box_without_tor
    data = ("--data", str(box.data_dir))
    # Reach off, tor stopped: as designed, and said so without alarm.
    code, out = await cli("reach", "status", *data)
    assert code == 0 and "tor: not running (it runs only while remote reach is on)" in out, out
    page = await _page(box)
    assert "tor is not running: it runs only while remote reach is on." in page
    assert 'class="muted" id="reach-tor-stopped"' in page and "tor does not answer" not in page
    # Reach on but tor still stopped: a fault, said as one.
    code, out = await cli("reach", "on", *data)
    assert code == 0, out
    code, out = await cli("reach", "status", *data)
    assert "tor: not running, although remote reach is on" in out, out
    page = await _page(box)
    assert 'class="bad" id="reach-tor-stopped"' in page
    assert "phones cannot reach the box from outside" in page
    # The helper absent (tor's part not installed): where to look, not a bare error.
    await helper.cleanup()
    code, out = await cli("reach", "status", *data)
    assert "The tor part of remote reach is not installed or not running" in out, out
    assert "scripts/install.sh sets it up" in out
    page = await _page(box)
    assert 'id="reach-helper-down"' in page
    assert "The tor part of remote reach is not installed or not running." in page


# -- a failed `reach on` leaves tor's include file as the box's setting says: off ---------------


async def test_a_reach_on_that_tor_never_answers_leaves_everything_off(tmp_path: Path) -> None:
    """tor never writes the service's hostname (it did not start): `reach on` fails
    plainly, and the include file is put back to off, as the box's setting stays off.
    Before, the file said on: the path unit would start tor with an onion service the
    box did not serve, and `reach status` said off."""
    hs = tmp_path / "hs"
    hs.mkdir(mode=0o700)  # no hostname: tor never made the service's key
    files = TorFiles(
        ServiceConfig(hs, tmp_path / "peer.sock"),
        tmp_path / "reach.conf",
        sighup_from_pidfile(tmp_path / "tor.pid"),  # no pid file: tor is stopped
        hostname_wait_s=0.5,
    )
    files.disable()  # the installer's include file, saying off
    async with box_with_reach_stand_in(tmp_path, files) as (box, _):
        data = ("--data", str(box.data_dir))
        code, out = await cli("reach", "on", *data)
        assert code == 1, out
        assert "tor did not create the onion service's key; remote reach stays off" in out
        assert not files.enabled()
        assert "HiddenServiceDir" not in files.conf_path.read_text()
        assert not load_settings(box.data_dir).enabled
        code, out = await cli("reach", "status", *data)
        assert code == 0 and "remote reach: off" in out, out
        assert box.audit_actions("reach.") == []
        # tor starts and makes its key: the same command now turns everything on.
        (hs / "hostname").write_text("a" * 56 + ".onion\n")
        code, out = await cli("reach", "on", *data)
        assert code == 0 and "remote reach: on" in out, out
        assert files.enabled() and load_settings(box.data_dir).enabled
        assert box.audit_actions("reach.") == ["reach.on"]


async def test_a_reach_on_the_box_cannot_listen_for_withdraws_the_service(
    tmp_path: Path,
) -> None:
    """The helper publishes the service, then the box cannot listen on the onion
    socket (its directory does not exist): `reach on` says so and exits 1, and tor's
    include file is put back to off, as the box's setting stays off. Before, the
    include file said on (the path unit would run tor with the service) and the CLI
    died on a JSON traceback."""
    hs = tmp_path / "hs"
    hs.mkdir(mode=0o700)
    reload = TorStandIn(hs, tmp_path / "reach.conf")
    missing = tmp_path / "no-such-dir" / "peer.sock"
    files = TorFiles(ServiceConfig(hs, missing), tmp_path / "reach.conf", reload)
    files.disable()  # the installer's include file, saying off
    async with box_with_reach_stand_in(tmp_path, files) as (box, _):
        data = ("--data", str(box.data_dir))
        code, out = await cli("reach", "on", *data)
        assert code == 1, out
        assert "Remote reach could not be turned on: it stays off" in out, out
        assert f"cannot listen on {missing}" in out and "Traceback" not in out
        assert not files.enabled()
        assert "HiddenServiceDir" not in files.conf_path.read_text()
        assert not load_settings(box.data_dir).enabled
        code, out = await cli("reach", "status", *data)
        assert code == 0 and "remote reach: off" in out, out
        # The page: the same words, and reach still off.
        admin = WebAdmin(box.url)
        try:
            await admin.login()
            status, _, location = await admin.post_form("/reach/on", {}, form_page="/reach")
            assert status == 303 and location == "/reach"
            status, page = await admin.get("/reach")
            assert "Remote reach could not be turned on: it stays off" in page
            assert 'id="reach-state">off<' in page
        finally:
            await admin.close()
        assert not files.enabled() and not load_settings(box.data_dir).enabled
        assert box.audit_actions("reach.") == []


async def test_a_box_started_with_reach_off_puts_the_include_file_back_to_off(
    tmp_path: Path,
) -> None:
    """A `reach on` cut short (power lost between the helper's enable and the box's
    setting) leaves the include file on and the setting off: at start the box asks
    the helper to withdraw the service, so tor does not serve it after the boot."""
    files, _ = tor_files(tmp_path)
    files.enable()  # the include file says on ...
    assert files.enabled()
    async with box_with_reach_stand_in(tmp_path, files) as (box, _):  # ... the setting off
        assert not files.enabled()
        assert "HiddenServiceDir" not in files.conf_path.read_text()
        code, out = await cli("reach", "status", "--data", str(box.data_dir))
        assert code == 0 and "remote reach: off" in out, out
