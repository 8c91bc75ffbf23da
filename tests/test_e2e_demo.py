"""`make demo` (scripts/demo.sh): a dev box and two phones chatting, run for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_the_demo_pairs_two_phones_chats_searches_and_verifies(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = {**os.environ, "DEMO_DIR": str(demo_dir), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for name in ("Pixel de Maître Durand", "iPhone du Dr Martin"):
        assert f"confirmed by the admin: {name} is device #" in out
    assert "dr.martin -> maitre.durand Parfait, à jeudi." in out
    assert out.count("archived: sent at log #") == 4
    assert "Search 'medicale' in the web UI archive: 2 hit(s)" in out
    assert out.count("button   active    records=4") == 2
    assert "OK: the archive verifies" in out
    # The demo stopped its box: nothing listens on the control socket any more.
    assert not _box_alive(demo_dir / "control.sock")


def _box_alive(control_socket: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(control_socket))
        except OSError:
            return False
    return True
