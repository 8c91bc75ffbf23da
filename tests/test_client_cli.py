"""The `strongroom phone` CLI and the phone's state file, against a real box on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from peer_helpers import RunningBox, running_box
from strongroom.client.cli import main
from strongroom.client.state import DeviceState, StateError

box = pytest.fixture(running_box)


async def _phone(*argv: str) -> int:
    # main() runs its own event loop, as from a terminal; the box runs in ours.
    return await asyncio.to_thread(main, list(argv))


async def test_pair_send_inbox_restore_attach(
    box: RunningBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claire, paul = str(tmp_path / "claire.json"), str(tmp_path / "paul.json")
    assert (
        await _phone(
            "--state",
            claire,
            "pair",
            box.url,
            "--name",
            "Pixel",
            "--owner",
            "claire",
            "--fingerprint",
            box.keys.fingerprint,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert box.gate.attempts[0].comparison_code in out
    assert (
        await _phone("--state", paul, "pair", box.url, "--name", "iPhone", "--owner", "paul") == 0
    )
    capsys.readouterr()

    assert (
        await _phone(
            "--state", claire, "send", "Rendez-vous à 15 h", "--conv", "paul", "--to", "paul"
        )
        == 0
    )
    assert "proof verified" in capsys.readouterr().out
    assert await _phone("--state", paul, "inbox", "--wait", "5") == 0
    assert "[claire] Rendez-vous à 15 h" in capsys.readouterr().out
    assert box.count("SELECT count(*) FROM messages WHERE direction = 'in'") == 1

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.4 " + bytes(200_000))
    assert await _phone("--state", claire, "attach", str(scan), "--conv", "paul") == 0
    assert box.count("SELECT count(*) FROM attachments WHERE name = 'scan.pdf'") == 1
    capsys.readouterr()

    restored = tmp_path / "restored"
    assert await _phone("--state", claire, "restore", "--attachments", str(restored)) == 0
    assert "Rendez-vous à 15 h" in capsys.readouterr().out
    assert [p.read_bytes() for p in restored.iterdir()] == [scan.read_bytes()]


async def test_cli_errors_are_one_line_and_nonzero(
    box: RunningBox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _phone("--state", str(tmp_path / "none.json"), "send", "x", "--conv", "c") == 1
    assert "pair first" in capsys.readouterr().err
    state = tmp_path / "p.json"
    assert await _phone("--state", str(state), "pair", box.url, "--name", "P", "--owner", "o") == 0
    assert await _phone("--state", str(state), "pair", box.url, "--name", "P", "--owner", "o") == 1
    assert "already holds a phone" in capsys.readouterr().err


def test_state_round_trips_and_rejects_tampered_files(tmp_path: Path) -> None:
    state = DeviceState.generate("Pixel", "claire")
    state.device_id = 3
    state.box_noise_public = bytes(range(32))
    state.box_sign_public = bytes(32)
    state.outbox = [(b"\xa1", bytes(64))]
    path = tmp_path / "phone.json"
    state.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = DeviceState.load(path)
    assert loaded.to_json() == state.to_json()
    assert loaded.noise_public == state.noise_public

    data = json.loads(path.read_text())
    data["sign_seed"] = "abcd"
    path.write_text(json.dumps(data))
    with pytest.raises(StateError):
        DeviceState.load(path)
    path.write_text("{")
    with pytest.raises(StateError):
        DeviceState.load(path)
