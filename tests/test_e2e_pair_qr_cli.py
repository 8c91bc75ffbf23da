"""`strongroom pair --qr` on a running box: QR pairing without a browser.

The CLI runs as its own process and talks to the box over the control socket;
the phone is the reference client pairing over real Noise XXpsk3 on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import segno

from e2e_helpers import Clock, E2EBox, message, new_phone, prepare_data_dir, start_box
from strongroom.client import HandshakeRefused
from strongroom.pairing.qr import parse_offer


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[E2EBox]:
    config = await prepare_data_dir(tmp_path / "box")
    box = await start_box(config, clock=Clock())
    yield box
    await box.stop()


async def _strongroom(running: E2EBox, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "strongroom", *args, "--data", str(running.data_dir)]
    return await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONIOENCODING": "utf-8", "PATH": "/usr/bin:/bin"},
    )


async def test_pair_qr_json_prints_a_payload_a_phone_pairs_with(running: E2EBox) -> None:
    done = await _strongroom(running, "pair", "--qr", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    offer = parse_offer(payload["uri"])
    assert offer.fingerprint == payload["fingerprint"] == running.fingerprint
    assert (offer.host, offer.port) == (payload["host"], payload["port"])
    assert 0 < payload["expires_in_s"] <= 120
    phone = new_phone("Pixel de Claire", "claire")
    paired = await phone.pair_qr(running.peer_url, payload["uri"])
    assert paired.fingerprint == running.fingerprint
    ack = await phone.push(message("bonjour", conv="c", sender="Claire", n=1))
    assert ack.log_index > 0
    await phone.close()
    assert "pairing.qr" in running.audit_actions("pairing.")


async def test_the_phone_cli_pairs_by_qr_with_no_code_to_compare(
    running: E2EBox, tmp_path: Path
) -> None:
    """operations.md: "the phone scans it and pairs at once, no code to compare". The
    reference phone said "Comparison code: … (check that the box shows the same code)",
    a code the box shows nowhere for a QR pairing."""
    offer = json.loads((await _strongroom(running, "pair", "--qr", "--json")).stdout)["uri"]
    phone = [sys.executable, "-m", "strongroom", "phone", "--state", str(tmp_path / "p.json")]
    argv = ["pair", running.peer_url, "--name", "Pixel", "--owner", "claire", "--qr", offer]
    paired = await asyncio.to_thread(
        subprocess.run,
        [*phone, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert paired.returncode == 0, paired.stderr
    assert paired.stdout.startswith("Paired as device "), paired.stdout
    assert "code" not in paired.stdout.lower()


async def test_pair_qr_draws_the_offer_in_the_terminal(running: E2EBox) -> None:
    first = await _strongroom(running, "pair", "--qr", "--json")
    done = await _strongroom(running, "pair", "--qr")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    uri = next(line for line in lines if line.startswith("strongroom://pair?"))
    # What is drawn is the QR code of exactly the URI printed under it.
    drawing = io.StringIO()
    segno.make_qr(uri, error="m").terminal(out=drawing, compact=True)
    assert done.stdout.startswith(drawing.getvalue())
    assert "120 s" in done.stdout or "119 s" in done.stdout
    phone = new_phone("iPhone de Paul", "paul")
    await phone.pair_qr(running.peer_url, uri)
    assert phone.state.paired
    await phone.close()
    # The drawn offer replaced the earlier one, and was used once: neither pairs again.
    stale = new_phone("Vieux", "paul")
    for old_uri in (json.loads(first.stdout)["uri"], uri):
        with pytest.raises(HandshakeRefused):
            await stale.pair_qr(running.peer_url, old_uri)
    await stale.close()
    assert running.count("SELECT count(*) FROM devices") == 1


async def test_pair_qr_on_a_stopped_box_says_so(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    command = [sys.executable, "-m", "strongroom", "pair", "--qr", "--data", str(config.data_dir)]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "no box is running" in done.stderr
