"""Each conversation's oldest live record date (schema 11's conv_live, kept by triggers):
retention's plan probes the conversation index only where it is within the bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_helpers import open_with_keys
from strongroom.archive import conv_keys, db, schema
from strongroom.archive.db import Connection
from strongroom.archive.schema import SCHEMA_VERSION
from strongroom.archive.store import Archive
from strongroom.office import retention
from strongroom.office.erasure import erase_in_txn
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    Duration,
    PolicySpec,
    assign_policy,
    create_policy,
)
from strongroom.office.resolve import MAX_SENT_AT
from test_conv_keys import CONVS, OWNER, T0, write_messages
from test_office_support import DAY_MS, new_phone

# The migration that makes conv_live, found by what it does (later ones append).
BEFORE = next(n for n, sql in enumerate(schema.MIGRATIONS) if "TABLE conv_live" in sql)


def truth(conn: Connection) -> dict[int, int]:
    """The oldest live record date of every conversation that has one, from `records`."""
    rows = conn.execute(
        "SELECT conversation_id, min(sent_at) FROM records WHERE destroyed_at IS NULL"
        " GROUP BY conversation_id"
    )
    return {int(c): int(at) for c, at in rows}


def kept(conn: Connection) -> dict[int, int]:
    live = retention.live_from(conn, MAX_SENT_AT)
    assert live is not None
    return live


def oldest_ids(conn: Connection, count: int) -> list[int]:
    rows = conn.execute(
        "SELECT id FROM records WHERE destroyed_at IS NULL ORDER BY sent_at, id LIMIT ?", (count,)
    )
    return [int(r[0]) for r in rows]


@pytest.fixture
def v_before(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Path]:
    """A data dir written before conv_live: records in three conversations, some destroyed
    (the oldest ones of each, and every record of one conversation)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", schema.MIGRATIONS[:BEFORE])
        patch.setattr(db, "SCHEMA_VERSION", BEFORE)
        old = open_with_keys(tmp_path / "data", archive_keys)
        try:
            assert db.schema_version(old.conn) == BEFORE
            phone, key = new_phone(old, OWNER)
            write_messages(old, key, phone, 0, 60)
            old.conn.execute("BEGIN IMMEDIATE")
            conv_keys.fold(old.conn)  # keys in both tables of the conversation index
            old.conn.execute("COMMIT")
            write_messages(old, key, phone, 100, 30)
            gone = oldest_ids(old.conn, 10)
            every = [
                int(r[0])
                for r in old.conn.execute(
                    "SELECT id FROM records WHERE conversation_id ="
                    " (SELECT max(conversation_id) FROM records)"
                )
            ]
            old.write(lambda txn: erase_in_txn(txn, gone + every))
        finally:
            old.close()
    yield tmp_path / "data"


def test_an_archive_from_before_gets_each_conversations_oldest_live_record(
    v_before: Path, archive_keys: dict[str, bytes]
) -> None:
    archive = open_with_keys(v_before, archive_keys)  # migrates on open
    try:
        conn = archive.conn
        assert db.schema_version(conn) == SCHEMA_VERSION
        assert kept(conn) == truth(conn)
        assert len(truth(conn)) == 2  # one of the three has no live record left
        assert conn.execute("SELECT count(*) FROM senders_removed").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        archive.close()


def test_new_records_and_destructions_keep_it_exact(archive: Archive) -> None:
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 40)
    conn = archive.conn
    assert kept(conn) == truth(conn)
    # Destroyed oldest first, newest first, and in between: always the next live one.
    for pick in (
        lambda: oldest_ids(conn, 5),
        lambda: oldest_ids(conn, 12)[::-1],
        lambda: oldest_ids(conn, 9)[1::2],
    ):
        ids = pick()
        archive.write(lambda txn, ids=ids: erase_in_txn(txn, ids))  # type: ignore[misc]
        assert kept(conn) == truth(conn)
    # An older record arriving late (a phone that was offline) lowers it again.
    write_messages(archive, key, phone, 500, 6)
    assert kept(conn) == truth(conn)
    # Every record destroyed: no live record, nothing to probe.
    everything = [int(r[0]) for r in conn.execute("SELECT id FROM records")]
    archive.write(lambda txn: erase_in_txn(txn, everything))
    assert kept(conn) == {} == truth(conn)


@pytest.mark.parametrize("start", ["record_date", "last_activity"])
def test_the_plan_is_the_same_as_probing_every_conversation(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 60)
    conn = archive.conn
    spec = PolicySpec("1 jour", Duration(1, "days"), start, "destroy")
    policy = int(archive.write(create_policy(spec, "admin")))
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy, "admin"))
    gone = oldest_ids(conn, 7)
    archive.write(lambda txn: erase_in_txn(txn, gone))
    for now in (T0, T0 + 2 * DAY_MS + 300_000, T0 + 2 * DAY_MS + 600_000, T0 + 3 * DAY_MS):
        plan = retention.find_due(conn, now)
        with monkeypatch.context() as patch:
            patch.setattr(retention, "live_from", lambda conn, latest: None)
            every = retention.find_due(conn, now)
        assert plan == every
        assert {i.record for i in plan.to_destroy}.isdisjoint(gone)
    assert retention.find_due(conn, T0 + 3 * DAY_MS).to_destroy  # something was due


def test_a_night_with_nothing_old_enough_reads_no_conversations_facts(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 60)
    conn = archive.conn
    spec = PolicySpec("30 jours", Duration(30, "days"), "record_date", "destroy")
    policy = int(archive.write(create_policy(spec, "admin")))
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy, "admin"))
    asked: list[list[int] | None] = []
    load = retention.load_facts  # type: ignore[attr-defined]

    def spy(conn: Connection, extra_senders: object = (), only: object = None) -> object:
        asked.append(None if only is None else sorted(only))  # type: ignore[call-overload]
        return load(conn, only=only)  # type: ignore[arg-type]

    monkeypatch.setattr(retention, "load_facts", spy)
    assert retention.find_due(conn, T0 + 10 * DAY_MS).empty
    assert asked == [[]]  # not one conversation read
    assert len(retention.find_due(conn, T0 + 40 * DAY_MS).to_destroy) == 60
    assert asked[-1] == sorted(truth(conn))


@pytest.mark.parametrize("damage", ["later", "deleted"])
def test_a_full_verify_names_a_conversation_whose_date_is_wrong(
    archive: Archive, damage: str
) -> None:
    from strongroom.archive.verify import verify_open_archive

    phone, key = new_phone(archive, OWNER)
    write_messages(archive, key, phone, 0, 30)
    conn = archive.conn
    gone = oldest_ids(conn, 4)
    archive.write(lambda txn: erase_in_txn(txn, gone))
    assert verify_open_archive(archive).ok
    conv, at = min(truth(conn).items())
    if damage == "later":
        conn.execute("UPDATE conv_live SET live_from = ? WHERE conversation_id = ?", (at + 1, conv))
    else:
        conn.execute("DELETE FROM conv_live WHERE conversation_id = ?", (conv,))
    kept = None if damage == "deleted" else at + 1
    report = verify_open_archive(archive)
    expected = f"conversation {conv}: conv_live dates its oldest live record {kept}, but"
    assert any(p.startswith(expected) for p in report.problems), report.problems


def test_the_plan_does_not_walk_the_destroyed_keys_before_the_oldest_live_record(
    archive: Archive,
) -> None:
    from strongroom.archive import writes
    from support.records import signed_message
    from test_retention_flat import vm_steps

    phone, key = new_phone(archive, OWNER)

    def store(texts: range, at: int) -> list[int]:
        records = [signed_message(key, f"m {n}", conv=CONVS[n % 3], at=at + n, n=n) for n in texts]
        archive.write_batch([writes.store_record(r, phone, OWNER) for r in records])
        marks = ",".join("?" * len(records))
        rows = archive.conn.execute(
            f"SELECT id FROM records WHERE record_id IN ({marks})",
            [r.record_id for r in records],
        )
        return [int(r[0]) for r in rows]

    store(range(30), T0)
    conn = archive.conn
    spec = PolicySpec("1 jour", Duration(1, "days"), "record_date", "review")
    policy = int(archive.write(create_policy(spec, "admin")))
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy, "admin"))
    now = T0 + 3 * DAY_MS
    before = vm_steps(conn, lambda: retention.find_due(conn, now))
    # Years of destructions: 600 records older than the 30 live ones, all destroyed.
    old = store(range(1000, 1600), T0 - 30 * DAY_MS)
    archive.write(lambda txn: erase_in_txn(txn, old))
    assert len(retention.find_due(conn, now).to_review) == 30
    after = vm_steps(conn, lambda: retention.find_due(conn, now))
    assert after <= before + 3, (before, after)
