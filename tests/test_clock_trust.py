"""Time you can trust, with a clock the test sets: heads never go back in time, a clock
that goes back is shown and audited, and retention refuses to destroy meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e_helpers import Clock, WebAdmin, prepare_data_dir, start_box, until
from strongroom.archive import writes
from strongroom.office import retention
from strongroom.office.errors import ClockBehind
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from test_office_support import DAY_MS, T0, new_box, new_phone, say


def test_a_tree_head_never_carries_an_earlier_time_than_the_previous_one(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    try:
        first = box.archive.write_batch([writes.audit("test", "before", "")]).tree_head
        assert first is not None and first.timestamp_ms == T0
        box.clock.now = (
            T0 - 3_600_000
        ) / 1000  # a power cut, no RTC: the clock restarts an hour back
        second = box.archive.write_batch([writes.audit("test", "after", "")]).tree_head
        assert second is not None and second.tree_size > first.tree_size
        assert second.timestamp_ms >= first.timestamp_ms
        times = [
            int(at)
            for (at,) in box.archive.conn.execute(
                "SELECT at FROM audit_events WHERE actor = 'test' ORDER BY id"
            )
        ]
        assert times == sorted(times)
    finally:
        box.close()


def test_retention_destroys_nothing_while_the_clock_is_behind_the_newest_head(
    tmp_path: Path,
) -> None:
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive)
        record = say(box, phone, "périmé", at=T0)
        spec = PolicySpec("30 days", Duration(30, "days"), "record_date", "destroy")
        policy = int(box.archive.write(create_policy(spec, "admin")))
        box.archive.write(assign_policy("contact", "M. Martin", policy, "admin"))
        box.clock.now = (T0 + 40 * DAY_MS) / 1000
        box.archive.write(writes.audit("test", "a later head", ""))
        with pytest.raises(ClockBehind):
            retention.run(box.archive, T0 + 31 * DAY_MS)  # due by that clock, but it went back
        assert box.reader_scalar("SELECT body FROM records WHERE id = ?", record) is not None
        result = retention.run(box.archive, T0 + 40 * DAY_MS)
        assert result.destruction.destroyed == 1
    finally:
        box.close()


async def test_a_clock_that_goes_back_is_shown_audited_and_stops_retention(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    clock = Clock()
    running = await start_box(config, clock=clock)
    admin = WebAdmin(running.url)
    try:
        await running.box.audit("test", "a signed head now", "")
        clock.advance(-3600.0)  # NTP not answering yet, or someone set it by hand
        await until(lambda: "clock" in running.box.faults, what="the clock fault")
        await until(lambda: "clock.behind" in running.audit_actions("clock."), what="the audit")
        retention_run = await running.runtime.night_jobs.run("retention")
        assert retention_run.outcome == "failed"
        assert "earlier than" in retention_run.summary
        await admin.login()
        status, page = await admin.get("/dashboard")
        assert status == 200 and 'data-fault="clock"' in page
        assert "The clock went back in time." in page

        clock.advance(3600.0 + 5)  # NTP answered: past the newest head again
        await until(lambda: "clock" not in running.box.faults, what="the fault to clear")
        await until(lambda: "clock.ok" in running.audit_actions("clock."), what="clock.ok")
        assert (await running.runtime.night_jobs.run("retention")).outcome == "done"
    finally:
        await admin.close()
        await running.stop()


async def test_a_box_unlocked_with_its_clock_behind_the_last_head_says_so(
    tmp_path: Path,
) -> None:
    config = await prepare_data_dir(tmp_path / "box")
    clock = Clock()
    first = await start_box(config, clock=clock)
    await first.box.audit("test", "signed at the right time", "")
    await first.stop()
    clock.advance(-86400.0)  # rebooted a day in the past (fake-hwclock, no RTC)
    again = await start_box(config, clock=clock)
    try:
        await until(lambda: "clock" in again.box.faults, what="the clock fault after unlock")
        await until(lambda: "clock.behind" in again.audit_actions("clock."), what="the audit")
    finally:
        await again.stop()
