"""The records office's reads stay indexed: an office page or a retention run no longer
scans every message (`load_facts`) or every record (`hold_reach`), and the senders it
reads instead (`conversation_senders`, schema migration 6) stay true through ingest,
migration and erasure. Real SQLCipher files; each statement's plan is SQLite's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import message
from strongroom.archive.db import Connection
from strongroom.archive.schema import MIGRATIONS
from strongroom.office import matters, retention
from strongroom.office.facts import load_facts, persons_of
from strongroom.office.holds import HoldSpec, hold_reach, list_holds, place_hold
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    Duration,
    PolicySpec,
    assign_policy,
    create_policy,
)
from test_office_support import (
    DAY_MS,
    T0,
    Box,
    conversation_id,
    new_box,
    new_phone,
    store,
)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def push(box: Box, phone: tuple[int, Any], text: str, conv: str, owner: str, **kw: Any) -> None:
    record = message(phone[1], text, conv=conv, at=kw.pop("at", T0), **kw)
    store(box, phone[1], phone[0], owner, record)


def plans_of(conn: Connection, work: Callable[[], object]) -> dict[str, list[str]]:
    """Every SELECT `work` runs on `conn`, with SQLite's query plan for it."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    plans = {}
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
            plans[sql] = [str(row[3]) for row in rows]
    return plans


def traced_reads(
    monkeypatch: pytest.MonkeyPatch, views: object, conn: Connection
) -> list[Callable[[Connection], Any]]:
    """The reads a web view module's handlers ask (its `read`), run on `conn` and kept,
    so that a test can replay them under `plans_of` (the page's own statements)."""
    traced: list[Callable[[Connection], Any]] = []

    async def read_traced(_request: Any, query: Callable[[Connection], Any]) -> Any:
        traced.append(query)
        return query(conn)

    monkeypatch.setattr(views, "read", read_traced)
    return traced


def scans(plans: dict[str, list[str]], table: str) -> list[str]:
    """The statements that read `table` whole (a SCAN, not a SEARCH by an index)."""
    return [
        sql
        for sql, steps in plans.items()
        if any(step.startswith(f"SCAN {table}") and "INDEX" not in step for step in steps)
        or any(step.startswith(f"SCAN {table} USING") for step in steps)
    ]


def test_office_reads_never_scan_every_message_or_record(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    martin = new_phone(box.archive, "dr.martin", "Fairphone")
    for n in range(30):
        push(box, durand, f"n{n}", f"c-{n % 6}", "maitre.durand", peer="M. Petit", at=T0 + n)
        push(box, martin, f"m{n}", f"d-{n % 4}", "dr.martin", peer="", at=T0 + n)
    matter = box.archive.write(matters.create_matter("2024-17", "M. Petit", "", "admin"))
    box.archive.write(matters.attach(matter, "admin", person="M. Petit"))
    for spec in (
        HoldSpec("person", "plainte", person="dr.martin"),
        HoldSpec("conversation", "saisie", conversation_id=conversation_id(box, "c-1")),
        HoldSpec("matter", "litige", matter_id=matter),
        HoldSpec("date_range", "audit", from_ms=T0 + 3, to_ms=T0 + 9),
    ):
        box.archive.write(place_hold(spec, "admin"))
    conn = box.archive.reader()
    try:
        hold_list = list_holds(conn)
        reach = hold_reach(conn, hold_list)
        # What the holds list shows: conversations and live records each one covers.
        assert [(r.conversations, r.records) for r in reach.values()] == [
            (4, 30),  # dr.martin: his four conversations
            (1, 5),  # c-1
            (6, 30),  # the matter, through its client M. Petit
            (10, 14),  # seven instants, a record of each phone at each
        ]
        for work in (lambda: load_facts(conn), lambda: hold_reach(conn, hold_list)):
            plans = plans_of(conn, work)
            assert plans, "no statement traced"
            assert scans(plans, "messages") == []
            assert scans(plans, "records") == []
    finally:
        conn.close()


def test_senders_are_kept_as_messages_arrive_and_forgotten_when_erased(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    # An older phone: no peer; the only trace of Dr Martin is as a sender.
    him = {"from": "Dr Martin"}
    push(box, durand, "from him", "c-1", "maitre.durand", peer="", direction="in", **him)
    push(box, durand, "from me", "c-1", "maitre.durand", peer="", at=T0 + 10 * DAY_MS)
    cid = conversation_id(box, "c-1")
    assert load_facts(box.archive.conn)[cid].involves("dr.martin")
    assert "Dr Martin" in persons_of(box.archive.conn)

    # Retention destroys the older message: Dr Martin's name goes with it, and a hold
    # on him no longer reaches the conversation's remaining record.
    policy = PolicySpec("1 day", Duration(1, "days"), "record_date", "destroy")
    policy_id = box.archive.write(create_policy(policy, "admin"))
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, policy_id, "admin"))
    done = retention.run(box.archive, T0 + 2 * DAY_MS)
    assert done.destruction.destroyed == 1
    assert not load_facts(box.archive.conn)[cid].involves("dr.martin")
    assert "Dr Martin" not in persons_of(box.archive.conn)
    senders = box.archive.conn.execute("SELECT sender FROM conversation_senders").fetchall()
    assert "Dr Martin" not in {s for (s,) in senders}
    box.archive.write(place_hold(HoldSpec("person", "plainte", person="dr.martin"), "admin"))
    box.archive.write(place_hold(HoldSpec("conversation", "saisie", conversation_id=cid), "admin"))
    box.archive.write(place_hold(HoldSpec("date_range", "audit", from_ms=T0, to_ms=T0), "admin"))
    reach = hold_reach(box.archive.conn, list_holds(box.archive.conn))
    # The destroyed record no longer counts: one live record is left, dated later.
    assert [(r.conversations, r.records) for r in reach.values()] == [(0, 0), (1, 1), (0, 0)]


def test_migration_fills_the_senders_of_an_archive_made_before_it(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    her = {"from": "Mme Roux"}
    push(box, durand, "a", "c-1", "maitre.durand", peer="", direction="in", **her)
    push(box, durand, "b", "c-2", "maitre.durand", peer="", at=T0 + 1)
    conn = box.archive.conn
    # Back to the schema before the senders table: what a box upgraded from it holds.
    conn.executescript(
        "DROP TRIGGER messages_sender; DROP TABLE conversation_senders;"
        " DROP INDEX records_destroyed;"
    )
    # The migration itself (run by position, whatever order the migrations land in).
    [script] = [m for m in MIGRATIONS if "CREATE TABLE IF NOT EXISTS conversation_senders" in m]
    conn.executescript(script)
    rows = conn.execute(
        "SELECT c.ref, s.sender FROM conversation_senders s"
        " JOIN conversations c ON c.id = s.conversation_id ORDER BY c.ref"
    ).fetchall()
    senders = {(str(ref), str(sender)) for ref, sender in rows}
    assert ("c-1", "Mme Roux") in senders
    assert all(sender != "Mme Roux" for ref, sender in senders if ref == "c-2")
    facts = load_facts(conn)
    assert facts[conversation_id(box, "c-1")].involves("mme roux")
    assert not facts[conversation_id(box, "c-2")].involves("mme roux")
    # And the trigger is back: a new sender is known at once.
    push(box, durand, "c", "c-2", "maitre.durand", peer="", direction="in", **her)
    assert load_facts(conn)[conversation_id(box, "c-2")].involves("mme roux")
