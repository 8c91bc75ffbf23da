"""The `strongroom` CLI used on a box that is running (what an admin does over SSH)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from e2e_helpers import Clock, message, pair_by_qr, prepare_data_dir, start_box
from web_helpers import ADMIN_PASSWORD


async def test_strongroom_verify_on_a_running_box_does_not_break_the_next_push(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    running = await start_box(config, clock=Clock())
    phone, _ = await pair_by_qr(running, "Pixel", "dr.martin")
    try:
        await phone.push(message("avant", conv="c", sender="Me", n=1))
        command = [sys.executable, "-m", "strongroom", "verify", "--data", str(config.data_dir)]
        verify = await asyncio.to_thread(
            subprocess.run,
            [*command, "--passphrase-file", str(passphrase_file)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "OK: the archive verifies" in verify.stdout
        # The verify run wrote its audit event from another process: the box must
        # still append after it (today its in-memory log size is stale: "internal error").
        ack = await phone.push(message("après", conv="c", sender="Me", n=2))
        assert ack.log_index > 0
    finally:
        await phone.close()
        await running.stop()
