"""`strongroom verify --incremental [--json]` on a stopped box: the first run is full,
the next checks only what is new plus a slice, and a tampered new record fails it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from archive_helpers import message, new_phone
from e2e_helpers import Clock, prepare_data_dir, start_box
from records_office_helpers import run_strongroom
from strongroom.archive import db, writes
from strongroom.box import Box
from strongroom.config import BoxConfig
from web_helpers import ADMIN_PASSWORD

OWNER = "dr.martin"


async def add_records(config: BoxConfig, count: int) -> None:
    box = Box(config)
    box.unlock(ADMIN_PASSWORD)
    try:
        archive = box.require_archive()
        device, key = new_phone(archive, owner=OWNER)
        archive.write_batch(
            [writes.store_record(message(key, f"note {i}"), device, OWNER) for i in range(count)]
        )
    finally:
        await box.stop()


async def test_incremental_verify_from_the_cli(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")

    def verify(*options: str) -> subprocess.CompletedProcess[str]:
        return run_strongroom(config.data_dir, "verify", *options, passphrase_file=passphrase)

    await add_records(config, 60)

    first = verify("--incremental", "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    run = json.loads(first.stdout)
    # Nothing was verified before: the incremental run is a full one.
    assert (run["ok"], run["kind"], run["from_size"], run["records"]) == (True, "full", 0, 60)

    await add_records(config, 7)
    second = verify("--incremental", "--json")
    assert second.returncode == 0, second.stdout + second.stderr
    run2 = json.loads(second.stdout)
    assert run2["kind"] == "incremental" and run2["ok"] is True
    assert run2["from_size"] == run["tree_size"] and run2["tree_size"] > run["tree_size"]
    assert 7 <= run2["records"] < 67  # the new records and a slice, not everything

    # Tamper with a new record as someone with the key would.
    await add_records(config, 3)
    box = Box(config)
    box.unlock(ADMIN_PASSWORD)
    try:
        archive = box.require_archive()
        with closing(db.connect(archive.path, box.keys.archive_key)) as conn:  # type: ignore[union-attr]
            conn.execute(
                "UPDATE messages SET text = 'falsifié' WHERE record_id ="
                " (SELECT max(id) FROM records)"
            )
    finally:
        await box.stop()
    failed = verify("--incremental")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "incremental verify" in failed.stdout
    assert "its message row differs from the signed record" in failed.stdout
    assert "FAILED" in failed.stdout
    # The failure stays: the next incremental run is full, and fails too.
    again = json.loads(verify("--incremental", "--json").stdout)
    assert (again["kind"], again["ok"]) == ("full", False)


async def test_incremental_verify_through_the_running_box_answers_json(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    await add_records(config, 30)
    running = await start_box(config, clock=Clock())
    try:
        command = [sys.executable, "-m", "strongroom", "verify", "--data", str(config.data_dir)]
        answers = []
        for _ in range(2):
            # No passphrase: the running box does the work (control socket, night job).
            done = await asyncio.to_thread(
                subprocess.run,
                [*command, "--incremental", "--json"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            answers.append(json.loads(done.stdout))
        first, second = answers
        assert (first["job"], first["outcome"]) == ("verify", "done")
        assert first["details"]["kind"] == "full" and first["details"]["records"] == 30
        assert second["details"]["kind"] == "incremental"
        assert second["details"]["from_size"] == first["details"]["tree_size"]
        assert "incremental" in second["summary"]
        bad = await asyncio.to_thread(
            subprocess.run,
            [*command, "--scheduled", "--incremental"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bad.returncode == 2 and "not allowed with" in bad.stderr
    finally:
        await running.stop()
