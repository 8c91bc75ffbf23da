"""tor runs only while reach is on (docs/operations.md): the helper's reload must
not fail while tor is stopped, since the switch unit starts tor afterwards and tor
then reads the files the helper wrote."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from strongroom.reach.tor_files import ReachHelperError, sighup_from_pidfile


def test_reloading_a_stopped_tor_is_a_no_op(tmp_path: Path) -> None:
    # No pid file: tor removes it when it stops.
    sighup_from_pidfile(tmp_path / "tor.pid")()
    # A stale pid file (tor was killed): the pid is gone.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / "tor.pid").write_text(gone + "\n")
    sighup_from_pidfile(tmp_path / "tor.pid")()


def test_a_running_tor_gets_sighup_and_a_damaged_pid_file_is_an_error(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])  # stands in for tor: SIGHUP's default ends it
    pidfile = tmp_path / "tor.pid"
    try:
        pidfile.write_text(f"{child.pid}\n")
        sighup_from_pidfile(pidfile)()
        assert child.wait(timeout=10) == -signal.SIGHUP
    finally:
        child.kill()
    pidfile.write_text("not a pid\n")
    with pytest.raises(ReachHelperError, match="could not reload tor"):
        sighup_from_pidfile(pidfile)()
