"""The retention plan reads only the records that can be due (issue #20, costs that
stay flat): not every live record of a 20-year archive each night.

`find_due` bounds each conversation's records by date (Resolver.due_bound) and skips
the destroyed ones on an index. These tests hold it to the plan the whole-archive
classification gives (the code before), on policies of every start event and level,
month ends included; and show that its work does not grow with records that cannot
be due. Real SQLCipher archives; the work is SQLite's own count of VM steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from strongroom.archive.db import Connection
from strongroom.office import matters, retention
from strongroom.office.facts import load_facts
from strongroom.office.holds import HoldSpec, list_holds, place_hold
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    Duration,
    PolicySpec,
    assign_policy,
    create_policy,
)
from strongroom.office.resolve import Resolver
from test_office_reads import plans_of, scans
from test_office_support import DAY_MS, T0, Box, conversation_id, new_box, new_phone, say


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def utc_ms(year: int, month: int, day: int, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


def whole_archive_plan(conn: Connection, now_ms: int) -> list[tuple[str, int, int]]:
    """The plan as find_due made it before: every live record classified (the reference)."""
    resolver = Resolver.load(conn)
    holds = list_holds(conn, active_only=True)
    facts = load_facts(conn)
    out = []
    for row_id, sent_at, conv, keep in conn.execute(
        "SELECT r.id, r.sent_at, r.conversation_id, k.keep_until FROM records r"
        " LEFT JOIN retention_keeps k ON k.record_id = r.id WHERE r.destroyed_at IS NULL"
    ):
        f = facts[int(conv)]
        governing = resolver.governing(f, int(sent_at))
        if governing is None or governing.due_at is None or governing.due_at > now_ms:
            continue
        if any(h.covers(f, int(sent_at)) for h in holds):
            state = "held"
        elif keep is not None and int(keep) > now_ms:
            state = "kept"
        else:
            state = governing.policy.action
        out.append((state, int(row_id), governing.due_at))
    return sorted(out)


def plan_of(conn: Connection, now_ms: int) -> list[tuple[str, int, int]]:
    plan = retention.find_due(conn, now_ms)
    out = [("destroy", i.record, i.due_at) for i in plan.to_destroy]
    out += [("review", i.record, i.due_at) for i in plan.to_review]
    out += [("held", h.item.record, h.item.due_at) for h in plan.held]
    out += [("kept", i.record, i.due_at) for i in plan.kept]
    return sorted(out)


def policy(box: Box, name: str, duration: Duration, start: str, action: str) -> int:
    return int(box.archive.write(create_policy(PolicySpec(name, duration, start, action), "a")))


def test_the_plan_is_the_whole_archive_classification_at_every_date(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    martin = new_phone(box.archive, "dr.martin", "Fairphone")
    # Month ends, where a calendar month is shorter than the day counted from
    # (31 January + 1 month = 28 February), then a record a day for 70 days.
    dates = [utc_ms(2021, 1, d, h) for d in (28, 29, 30, 31) for h in (0, 12, 23)]
    dates += [utc_ms(2021, 2, 1) + n * DAY_MS for n in range(70)]
    for n, at in enumerate(dates):
        say(box, durand, f"monthly {n}", conv="c-month", peer="M. Petit", at=at)
        say(box, durand, f"yearly {n}", conv="c-year", peer="Mme Roux", at=at)
        say(
            box, martin, f"patient {n}", conv="c-patient", peer="M. Blanc", at=at, owner="dr.martin"
        )
        say(box, durand, f"matter {n}", conv="c-matter", peer="M. Noir", at=at)
        say(box, durand, f"other {n}", conv="c-other", peer="Mme Vert", at=at)
    one_month = policy(box, "1 month", Duration(1, "months"), "record_date", "destroy")
    one_year = policy(box, "1 year", Duration(1, "years"), "record_date", "review")
    ten_days = policy(box, "10 days", Duration(10, "days"), "record_date", "destroy")
    activity = policy(box, "last activity", Duration(20, "days"), "last_activity", "review")
    closed = policy(box, "matter closed", Duration(5, "days"), "matter_closed", "destroy")
    write = box.archive.write
    write(assign_policy("conversation", str(conversation_id(box, "c-month")), one_month, "a"))
    write(assign_policy("contact", "Mme Roux", one_year, "a"))
    write(assign_policy("contact", "Mme Vert", ten_days, "a"))
    write(assign_policy("owner", "dr.martin", activity, "a"))
    matter = write(matters.create_matter("2021-4", "M. Noir", "", "a"))
    write(matters.attach(matter, "a", conversation_id=conversation_id(box, "c-matter")))
    write(assign_policy("matter", str(matter), closed, "a"))
    write(assign_policy("default", DEFAULT_SUBJECT, ten_days, "a"))
    # A hold on a date range, and a record kept after review.
    write(place_hold(HoldSpec("date_range", "audit", from_ms=dates[20], to_ms=dates[24]), "a"))
    kept = int(box.reader_scalar("SELECT min(id) FROM records"))
    write(retention.keep_after_review([kept], "a", utc_ms(2030, 1, 1), "still needed"))

    conn = box.archive.conn
    checked = 0
    for now in [utc_ms(2021, 2, 28, h) for h in (0, 11, 12, 13, 23)] + [
        utc_ms(2021, 3, 1) + n * 7 * DAY_MS for n in range(60)
    ]:
        if now == utc_ms(2021, 4, 5):
            write(matters.set_matter_closed(matter, "a", closed=True, closed_at_ms=now))
        expected = whole_archive_plan(conn, now)
        assert plan_of(conn, now) == expected, datetime.fromtimestamp(now / 1000, UTC)
        checked += len(expected)
    assert checked > 1000  # the dates above made records due, kept and held

    # Destroyed records are skipped, and the plan still agrees.
    now = utc_ms(2021, 6, 1)
    done = retention.run(box.archive, now)
    assert done.destruction.destroyed > 100
    assert plan_of(conn, now) == whole_archive_plan(conn, now)
    later = utc_ms(2022, 9, 1)
    assert plan_of(conn, later) == whole_archive_plan(conn, later)


def vm_steps(conn: Connection, work: Callable[[], Any]) -> int:
    """SQLite's virtual machine steps while `work` runs (in thousands)."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 1000)
    try:
        work()
    finally:
        conn.set_progress_handler(None, 0)
    return steps[0]


def test_the_plan_does_not_read_records_that_cannot_be_due(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    ten_days = policy(box, "10 days", Duration(10, "days"), "record_date", "destroy")
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, ten_days, "a"))
    for n in range(20):
        say(box, durand, f"old {n}", conv=f"c-{n % 4}", at=T0 + n)
    now = T0 + 30 * DAY_MS
    conn = box.archive.conn
    before = vm_steps(conn, lambda: retention.find_due(conn, now))
    assert len(retention.find_due(conn, now).to_destroy) == 20
    # Two thousand records that cannot be due yet (a busy week after them).
    for n in range(2000):
        say(box, durand, f"new {n}", conv=f"c-{n % 4}", at=now - 5 * DAY_MS + n)
    after = vm_steps(conn, lambda: retention.find_due(conn, now))
    assert len(retention.find_due(conn, now).to_destroy) == 20
    # Reading every live record (the code before) costs ~100 times more here.
    assert after <= before + 5, (before, after)

    # Once destroyed, each conversation's oldest live record (conv_live, schema 11) is
    # after the bound: the plan probes no conversation at all.
    assert retention.run(box.archive, now).destruction.destroyed == 20
    plans = plans_of(conn, lambda: retention.find_due(conn, now))
    assert scans(plans, "records") == []
    assert [sql for sql in plans if "json_each" in sql and "conv_folded" in sql] == []
    assert retention.find_due(conn, now).empty
    # A conversation probed with destroyed keys under its bound skips each on an index
    # probe, never a record row.
    say(box, durand, "late", conv="c-0", at=T0 + 100)
    plans = plans_of(conn, lambda: retention.find_due(conn, now))
    assert scans(plans, "records") == []
    due_rows = [s for sql, s in plans.items() if "json_each" in sql and "conv_folded" in sql]
    assert due_rows and any("records_destroyed" in s for s in due_rows[0])
    # Both tables of the conversation index (conv_keys), each searched by its index.
    assert any("SEARCH k USING PRIMARY KEY (conversation_id=?" in s for s in due_rows[0])
    assert any("conv_recent_conversation (conversation_id=?" in s for s in due_rows[0])


def test_a_bound_never_falls_before_the_exact_limit() -> None:
    from strongroom.office.policies import Policy
    from strongroom.office.resolve import latest_due_start

    for unit, values in (("days", (1, 10, 3650)), ("months", (1, 2, 13)), ("years", (1, 20))):
        for value in values:
            p = Policy(1, "p", Duration(value, unit), "record_date", "destroy", "", None)
            starts = [
                utc_ms(2019, 1, 1) + day * DAY_MS + hour * 3_600_000
                for day in range(0, 800, 7)
                for hour in (0, 13, 23)
            ]
            # Milliseconds too: the float seconds of Duration.after land 1 ms early
            # for some (the reviewer's 1085803014649 among them).
            starts += [1_085_803_014_649, *(1_085_803_014_649 + 7_919 * n for n in range(300))]
            for start in starts:
                due = p.duration.after(start)
                # A record due exactly now is never past the bound of now.
                assert start <= latest_due_start(p, due), (unit, value, start)
                assert latest_due_start(p, due) - start <= 5 * DAY_MS


def test_the_office_pages_name_conversations_without_reading_their_records(box: Box) -> None:
    from strongroom.archive.audit_reads import counts
    from strongroom.archive.listings import list_conversations

    durand = new_phone(box.archive, "maitre.durand")
    for n in range(12):
        say(box, durand, f"n{n}", conv=f"c-{n % 3}", at=T0 + n)
    conn = box.archive.conn
    # The holds and matters pages' pickers: names only (the counts read every record).
    named = list_conversations(conn, counted=False)
    assert sorted(c.ref for c in named) == ["c-0", "c-1", "c-2"]
    assert {c.messages for c in named} == {None}
    plans = plans_of(conn, lambda: list_conversations(conn, counted=False))
    assert scans(plans, "records") == [] and scans(plans, "messages") == []
    assert {c.messages for c in list_conversations(conn)} == {4}
    # The dashboard's log size, from the last leaf's index: the count, without the count.
    log_size = int(conn.execute("SELECT count(*) FROM log_leaves").fetchone()[0])
    assert counts(conn)["log_size"] == log_size == box.archive.log.size

    from strongroom.archive.message_count import MessageCount
    from strongroom.web.dashboard_views import archive_facts

    running = MessageCount()
    plans = plans_of(conn, lambda: archive_facts(conn, running, (1, 1)))
    assert scans(plans, "log_leaves") == [] and scans(plans, "records") == []
    assert archive_facts(conn, running, (1, 1)).counts == {
        "messages": 12,
        "devices": 1,
        "log_size": log_size,
    }


def test_the_dashboards_message_count_adds_what_arrived_and_recounts_after_a_destruction(
    box: Box,
) -> None:
    from strongroom.archive.message_count import MessageCount
    from strongroom.web.dashboard_views import archive_facts

    durand = new_phone(box.archive, "maitre.durand")
    for n in range(30):
        say(box, durand, f"ancien {n}", conv=f"c-{n % 3}", at=T0 + n)
    conn = box.archive.conn
    running = MessageCount()
    here = (1, 2)

    def shown() -> int:
        return archive_facts(conn, running, here).counts["messages"]

    def whole() -> int:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

    assert shown() == whole() == 30 and running.full_counts == 1
    for n in range(5):
        say(box, durand, f"nouveau {n}", conv="c-0", at=T0 + 10 * DAY_MS + n)
    # Only the new messages are counted: a range of the table's key, no scan.
    plans = plans_of(conn, lambda: running(conn, here))
    assert scans(plans, "messages") == []
    assert shown() == whole() == 35 and running.full_counts == 1
    # A destruction deletes messages: the next view counts again, and is right.
    ten_days = policy(box, "10 days", Duration(10, "days"), "record_date", "destroy")
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, ten_days, "a"))
    assert retention.run(box.archive, T0 + 10 * DAY_MS + 1000).destruction.destroyed == 30
    assert shown() == whole() == 5 and running.full_counts == 2
    # Another database file in its place (a restore): counted again.
    assert running(conn, (1, 3)) == 5 and running.full_counts == 3


def test_the_checklist_finds_a_chosen_retention_on_the_index(box: Box) -> None:
    from strongroom.web.onboarding import checklist

    conn = box.archive.conn

    def retention_done() -> bool:
        (step,) = [s for s in checklist(conn, backup_in_config=False) if s.key == "retention"]
        return bool(step.done)

    assert not retention_done()
    plans = plans_of(conn, lambda: checklist(conn, backup_in_config=False))
    assert scans(plans, "audit_events") == []
    ten_days = policy(box, "10 days", Duration(10, "days"), "record_date", "destroy")
    assert retention_done()  # retention.policy.create
    assert ten_days
