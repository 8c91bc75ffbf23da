"""`strongroom dev --port N` and `--fresh`: what an evaluator runs, as a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from devbox_process import DevBoxProcess, free_port
from strongroom.devbox import prepare_dev_box
from strongroom.identity import Keystore


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.url, response.read().decode("utf-8")


def test_fresh_starts_at_the_wizard_on_the_port_given(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    prepare_dev_box(data)  # an existing dev box, with an identity
    port = free_port()
    box = DevBoxProcess(data, "--fresh", "--port", str(port))
    try:
        url = box.wait_url()
        assert url == f"http://127.0.0.1:{port}"
        status, final, page = get(url + "/")
        assert "Strongroom" in page
        assert status == 200 and final.endswith("/setup")
        assert "first-run wizard" in box.output
        # The command README gives, for this data dir (not var/dev's).
        assert f"see the first-run wizard: .venv/bin/strongroom dev --fresh --data {data}" in (
            box.output
        )
    finally:
        assert box.stop() == 0
    # The previous box was kept aside, not deleted.
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("dev.old-")]
    assert len(kept) == 1 and (kept[0] / "keystore.json").exists()
    assert not (data / "keystore.json").exists()


def test_a_busy_port_given_is_refused_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        box = DevBoxProcess(tmp_path / "dev", "--fresh", "--port", str(port))
        assert box.wait_exit() == 1
    assert f"port {port} is already in use" in box.output
    assert "--port" in box.output
    assert "Traceback" not in box.output


def test_the_dev_admin_can_unlock_the_box_as_the_users_list_says(tmp_path: Path) -> None:
    """README: the dev box has "an `admin` whose passphrase is in
    var/dev/admin-passphrase.txt"; its unlock slot is admin's (it was nobody's, so
    `strongroom users` said admin could not unlock the box until a web login)."""
    data = tmp_path / "dev"
    prepare_dev_box(data)
    passphrase = (data / "admin-passphrase.txt").read_text().strip()
    assert Keystore(data / "keystore.json").unlock(passphrase, "admin")
    assert Keystore(data / "keystore.json").owners == ["admin"]
    command = [sys.executable, "-m", "strongroom", "users", "--data", str(data)]
    listed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert listed.stdout == "admin\tadmin\tactive\tcan unlock\n"


def test_a_busy_default_port_falls_back_to_a_free_one_and_says_which(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    prepare_dev_box(data)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        toml = data / "box.toml"
        toml.write_text(toml.read_text().replace("port = 8080", f"port = {port}"))
        box = DevBoxProcess(data)
        try:
            url = box.wait_url()
            assert f"port {port} is already in use; using a free port" in box.output
            assert not url.endswith(f":{port}")
            status, final, _ = get(url + "/login")
            assert status == 200 and final.endswith("/login")
        finally:
            assert box.stop() == 0
