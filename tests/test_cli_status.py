"""`strongroom status` reads as plain lines, and `--json` (what scripts parse) is JSON,
not the Python dict it used to print; `pair` and `revoke` answer JSON too. Its times
are the practice's; a zone sent on the control socket is checked as the CLI does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from e2e_helpers import Clock, prepare_data_dir, start_box
from strongroom.control import call

ZONE = "Asia/Tokyo"


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


async def test_status_prints_times_in_the_practices_zone_named_and_json_stays_utc(
    tmp_path: Path,
) -> None:
    """The box's clock is UTC; the practice (register detail) is in Tokyo (UTC+9, no DST):
    `strongroom status` shows the last night job at Tokyo's time, named, as the web does."""
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    try:
        data = config.data_dir
        code, _ = await call(
            data, "POST", "/register-details", {"details": {"time_zone": ZONE}, "actor": "t"}
        )
        assert code == 200
        code, outcome = await call(data, "POST", "/jobs/verify", {}, timeout_s=60)
        assert code == 200 and outcome["outcome"] == "done", outcome

        as_json = json.loads((await asyncio.to_thread(strongroom, data, "status", "--json")).stdout)
        at = as_json["night_jobs"]["verify"]["at"]
        assert at == outcome["at"] and as_json["time_zone"] == ZONE  # an instant, not local
        # Beside the epoch instant (kept: scripts read it), the same instant in ISO 8601 UTC.
        iso = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert as_json["night_jobs"]["verify"]["at_utc"] == iso
        run = as_json["night_jobs"]["verify"]["details"]  # the verification kept
        finished = datetime.fromtimestamp(run["finished_at_ms"] / 1000, UTC)
        assert run["finished_at_utc"] == finished.strftime("%Y-%m-%dT%H:%M:%SZ")
        local = datetime.fromtimestamp(at, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M")
        utc = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")
        assert local != utc
        text = await asyncio.to_thread(strongroom, data, "status")
        assert text.returncode == 0, text.stderr
        assert f"last verify: done {local} ({ZONE}): " in text.stdout, text.stdout
        assert "UTC" not in text.stdout
    finally:
        await running.stop()


async def test_the_control_socket_refuses_an_unknown_time_zone_and_does_nothing(
    tmp_path: Path,
) -> None:
    """The CLI and the web refuse a zone they do not know; a request sent straight to
    the control socket used to fall back to Europe/Paris silently (other days held,
    listed or exported than the ones asked for)."""
    config = await prepare_data_dir(tmp_path / "box")
    running = await start_box(config, clock=Clock())
    try:
        data = config.data_dir
        hold = {"from": "2026-10-25", "to": "2026-10-25", "reason": "plainte", "actor": "t"}
        code, body = await call(
            data, "POST", "/office", {"op": "hold.add", "params": {**hold, "time_zone": "Mars/X"}}
        )
        assert code == 400 and "unknown time zone 'Mars/X'" in body["error"], body
        code, body = await call(data, "POST", "/office", {"op": "hold.list", "params": {}})
        assert code == 200 and body["holds"] == []  # nothing was placed
        code, body = await call(
            data, "POST", "/office", {"op": "audit.list", "params": {"time_zone": "Mars/X"}}
        )
        assert code == 400 and "unknown time zone" in body["error"], body
        export = {"kind": "person", "person": "admin", "reason": "r", "recipient": "x"}
        code, body = await call(data, "POST", "/export", {**export, "time_zone": "Mars/X"})
        assert code == 400 and "unknown time zone" in body["error"], body
        # The same requests with a zone the box knows are served.
        code, body = await call(
            data, "POST", "/office", {"op": "hold.add", "params": {**hold, "time_zone": ZONE}}
        )
        assert code == 200 and body["hold"]["id"], body
    finally:
        await running.stop()


async def test_status_and_verify_say_the_kept_head_is_not_written(tmp_path: Path) -> None:
    """The Integrity page said it alone: a box that cannot write tree_head.latest (a full
    disk, a file a root command left unreadable) is said by `status` and `verify` too."""
    config = await prepare_data_dir(tmp_path / "box")
    kept = config.data_dir / "tree_head.latest"
    kept.unlink()
    kept.mkdir()  # a real OS error root gets too (EISDIR): the box cannot write it
    running = await start_box(config, clock=Clock())
    try:
        data = config.data_dir
        text = await asyncio.to_thread(strongroom, data, "status")
        assert text.returncode == 0, text.stderr
        warning = "WARNING: the kept tree head (tree_head.latest) has not been written since"
        assert warning in text.stdout, text.stdout
        status = json.loads((await asyncio.to_thread(strongroom, data, "status", "--json")).stdout)
        failing = status["kept_head"]
        since = running.box.require_archive().kept_head.failing_since_ms
        assert since is not None and failing["failing_since_ms"] == since
        iso = datetime.fromtimestamp(since / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert failing["failing_since_utc"] == iso and "directory" in failing["failure"]
        checked = await asyncio.to_thread(strongroom, data, "verify")
        assert checked.returncode == 1  # the file holds no head: that is a problem of its own
        assert "NOTE: the kept tree head (tree_head.latest) has not been written" in checked.stderr
        kept.rmdir()
        running.box.require_archive().kept_head.clock = lambda: float("inf")  # retry now
        await running.box.audit("test", "written.again")
        status = json.loads((await asyncio.to_thread(strongroom, data, "status", "--json")).stdout)
        assert status["kept_head"] is None
    finally:
        await running.stop()
