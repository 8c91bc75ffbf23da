"""The night's checks (issue #20, costs that stay flat; last notes' verify leftovers):

- verify finds the device events (pairings, revocations) on an index, not by reading
  the whole log (schema 9's partial index), on a new archive and on one upgraded from
  the previous version;
- every check the box makes is kept in `verifications` with why it was made: the
  GDPR register's and the one after a restore too, so the Integrity page and
  `strongroom verify --status` list them;
- the box's 24-hour check does not run the nightly timer's scheduled verify again.
Real SQLCipher archives, a real running box and its control socket, the shipped units.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
from contextlib import closing
from pathlib import Path

import pytest

from e2e_helpers import prepare_data_dir, start_box
from records_office_helpers import run_strongroom
from strongroom.archive import db, schema
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive
from strongroom.archive.verify_events import verify_device_events
from strongroom.archive.verify_records import VerifyReport
from strongroom.archive.verify_runs import latest, recent, run_verification
from strongroom.office import backup, report, restore
from support.clock import Clock
from test_office_reads import plans_of
from test_office_support import DAY_MS, T0, new_box, new_phone, open_box, say
from web_helpers import ADMIN_PASSWORD

REPO = Path(__file__).resolve().parents[1]


def whole_log_reads(plans: dict[str, list[str]]) -> list[str]:
    """Statements reading every log leaf: a SCAN of log_leaves other than of the partial
    index of device leaves (which holds those alone, a few per phone)."""
    return [
        sql
        for sql, steps in plans.items()
        if any(s.startswith("SCAN log_leaves") and "log_leaves_device" not in s for s in steps)
    ]


def device_events_plans(archive: Archive) -> dict[str, list[str]]:
    conn = archive.reader()
    try:
        report_ = VerifyReport()
        plans = plans_of(conn, lambda: verify_device_events(conn, report_))
        assert report_.ok, report_.problems
        assert report_.device_events == 2
        return plans
    finally:
        conn.close()


def test_device_events_are_found_on_an_index_not_by_reading_the_log(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive, "maitre.durand")
        new_phone(box.archive, "dr.martin", "Fairphone")
        for n in range(50):
            say(box, phone, f"message {n}", at=T0 + n)
        plans = device_events_plans(box.archive)
        assert whole_log_reads(plans) == []
        assert any("log_leaves_device" in step for steps in plans.values() for step in steps)
    finally:
        box.close()


def test_an_archive_at_the_previous_version_gets_the_index_and_keeps_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The version before the one that adds the device index (found by what it does).
    before = next(n for n, sql in enumerate(schema.MIGRATIONS) if "log_leaves_device" in sql)
    monkeypatch.setattr(db, "MIGRATIONS", schema.MIGRATIONS[:before])
    monkeypatch.setattr(db, "SCHEMA_VERSION", before)
    box = new_box(tmp_path)
    phone = new_phone(box.archive, "maitre.durand")
    new_phone(box.archive, "dr.martin", "Fairphone")
    for n in range(20):
        say(box, phone, f"avant {n}", at=T0 + n)
    conn = box.archive.conn
    assert db.schema_version(conn) == before
    # A run kept by the previous version (its columns only).
    conn.execute(
        "INSERT INTO verifications (kind, started_at, finished_at, ok, from_size, tree_size,"
        " records, leaves, sample_from, sample_to, problems) VALUES"
        " ('full', 1, 2, 1, 0, 3, 20, 3, 0, 3, 0)"
    )
    assert whole_log_reads(plans_of(conn, lambda: verify_device_events(conn, VerifyReport())))
    box.close()

    monkeypatch.setattr(db, "MIGRATIONS", schema.MIGRATIONS)
    monkeypatch.setattr(db, "SCHEMA_VERSION", SCHEMA_VERSION)
    again = open_box(box.data_dir, box.entropy)
    try:
        assert db.schema_version(again.archive.conn) == SCHEMA_VERSION
        assert whole_log_reads(device_events_plans(again.archive)) == []
        old = latest(again.archive.conn)
        assert old is not None and old.purpose == ""  # why it ran was not kept then
        verified, run = run_verification(again.archive, "full")
        assert verified.ok, verified.problems
        assert run.purpose == "manual" and latest(again.archive.conn) == run
    finally:
        again.close()


def test_the_gdpr_register_check_is_kept_as_a_verification(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    try:
        say(box, new_phone(box.archive), "bonjour", at=T0)
        assert latest(box.archive.conn) is None
        status = report.check_integrity(box.archive, T0 + DAY_MS)
        assert status.ok
        run = latest(box.archive.conn)
        assert run is not None
        assert (run.kind, run.purpose, run.ok) == ("full", "register", True)
        assert run.tree_size == box.archive.log.size
    finally:
        box.close()


def test_the_check_after_a_restore_is_kept_in_the_restored_archive(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    say(box, new_phone(box.archive), "dossier", at=T0)
    target = tmp_path / "usb"
    target.mkdir()
    result = backup.run(box.archive, target, box.keys.backup_key)
    entropy = box.entropy
    box.close()
    shutil.rmtree(box.data_dir)
    restore.run(target, entropy, tmp_path / "new-box")
    again = open_box(tmp_path / "new-box", entropy, now_ms=T0 + DAY_MS)
    try:
        runs = recent(again.archive.conn)
        assert [(r.kind, r.purpose, r.ok) for r in runs] == [("full", "restore", True)]
        assert runs[0].tree_size == result.tree_size
        assert runs[0].head == again.archive.latest_tree_head()
    finally:
        again.close()


def verifications(archive: Archive) -> list[tuple[str, str]]:
    with closing(archive.reader()) as conn:
        return [(r.kind, r.purpose) for r in reversed(recent(conn))]


async def test_the_24_hour_check_does_not_repeat_the_nightly_verify(tmp_path: Path) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    clock = Clock()  # the wall clock, moved on by the test
    running = await start_box(config, clock=clock)
    try:
        runtime = running.runtime
        archive = runtime.box.require_archive()
        # The nightly timer's command, through the control socket of the running box.
        timer = await asyncio.to_thread(
            run_strongroom, config.data_dir, *timer_argv("strongroom-verify.service")
        )
        assert timer.returncode == 0, timer.stdout + timer.stderr
        assert verifications(archive) == [("full", "scheduled")]
        # Later the same day the box's own 24-hour check comes round: nothing to add.
        clock.advance(20 * 3600)
        assert await runtime.periodic_check() is None
        assert verifications(archive) == [("full", "scheduled")]
        # No timer for a day (a box without it, a dev box): the box checks itself.
        clock.advance(5 * 3600)
        status = await runtime.periodic_check()
        assert status is not None and status.ok
        assert verifications(archive) == [("full", "scheduled"), ("incremental", "scheduled")]
        # What was verified when, from the CLI, asked of the running box.
        listed = await asyncio.to_thread(run_strongroom, config.data_dir, "verify", "--status")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        lines = listed.stdout.splitlines()
        assert len(lines) == 2
        assert "incremental" in lines[0] and "nightly schedule" in lines[0]
        assert "passed" in lines[0]
        answer = await asyncio.to_thread(
            run_strongroom, config.data_dir, "verify", "--status", "--json"
        )
        runs = json.loads(answer.stdout)["runs"]
        assert [(r["kind"], r["purpose"]) for r in runs] == [
            ("incremental", "scheduled"),
            ("full", "scheduled"),
        ]
    finally:
        await running.stop()
    # The box stopped: the CLI opens the archive itself (the admin's passphrase).
    secret = tmp_path / "passphrase"
    secret.write_text(ADMIN_PASSWORD + "\n", encoding="utf-8")
    stopped = await asyncio.to_thread(
        run_strongroom, config.data_dir, "verify", "--status", "--json", passphrase_file=secret
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert json.loads(stopped.stdout)["runs"] == runs


def timer_argv(unit: str) -> list[str]:
    """The unit's ExecStart= arguments after the binary, without its production config."""
    (line,) = [
        line
        for line in (REPO / "systemd" / unit).read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    ]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[0] == "/opt/strongroom/venv/bin/strongroom"
    return [a for a in argv[1:] if a not in ("--config", "/etc/strongroom/box.toml")]


def test_one_scheduled_verify_a_night_is_what_the_units_and_the_docs_say() -> None:
    # The timer runs the scheduled verify once a night; nothing else in the units does.
    assert timer_argv("strongroom-verify.service") == ["verify", "--scheduled"]
    timer = (REPO / "systemd" / "strongroom-verify.timer").read_text(encoding="utf-8")
    assert "OnCalendar=*-*-* 04:30:00" in timer.splitlines()
    others = [
        p.name
        for p in (REPO / "systemd").glob("*.service")
        if p.name != "strongroom-verify.service" and "verify" in p.read_text(encoding="utf-8")
    ]
    assert others == []
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "only when no scheduled verify ran in the last 24 hours" in operations
