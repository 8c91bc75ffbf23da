"""`strongroom status` reads as plain lines, and `--json` (what scripts parse) is JSON,
not the Python dict it used to print; `pair` and `revoke` answer JSON too."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from e2e_helpers import Clock, prepare_data_dir, start_box


def strongroom(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "strongroom", *args, "--data", str(data)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL
    )


async def test_status_prints_words_and_json_with_json(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    try:
        data = config.data_dir
        text = await asyncio.to_thread(strongroom, data, "status")
        assert text.returncode == 0, text.stderr
        assert "state: ready" in text.stdout.splitlines()
        assert f"box fingerprint: {running.runtime.box.fingerprint}" in text.stdout
        assert "pairing window: closed" in text.stdout

        as_json = await asyncio.to_thread(strongroom, data, "status", "--json")
        assert as_json.returncode == 0, as_json.stderr
        status = json.loads(as_json.stdout)
        assert status["phase"] == "ready" and status["pairing_open"] is False
        assert status["fingerprint"] == running.runtime.box.fingerprint

        pressed = await asyncio.to_thread(strongroom, data, "pair")
        assert pressed.returncode == 0, pressed.stderr
        assert json.loads(pressed.stdout) == {"pairing_open": True}
        reopened = json.loads(
            (await asyncio.to_thread(strongroom, data, "status", "--json")).stdout
        )
        assert reopened["pairing_open"] is True

        unknown = await asyncio.to_thread(strongroom, data, "revoke", "999")  # no such phone
        assert unknown.returncode == 1
        assert json.loads(unknown.stdout) == {"revoked": False, "error": "no device 999"}
    finally:
        await running.stop()
