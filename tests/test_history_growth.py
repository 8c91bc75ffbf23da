"""A new phone's restore: each history page costs the same at any archive size.

The page query used to collect every remaining record of the owner and sort
them for each page (quadratic restore). These tests hold the new query to the
same rows as before, to a plan without a sort, and to a cost that does not
grow with the owner's records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
from nacl.signing import SigningKey

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Archive
from strongroom.peer.history import history_page, history_sql, owner_devices

# The query every page ran before: the reference for which rows a page holds.
REFERENCE_SQL = (
    "SELECT r.id FROM records r JOIN devices d ON d.id = r.device_id"
    " WHERE d.owner = ? AND r.id > ? AND r.body IS NOT NULL ORDER BY r.id"
)


def push(archive: Archive, phones: list[tuple[int, SigningKey, str]], rounds: int) -> None:
    """`rounds` messages from each phone, interleaved as many phones pushing at once."""
    ops = []
    for n in range(rounds):
        for device, key, owner in phones:
            ops.append(writes.store_record(message(key, f"message {n}"), device, owner))
    for start in range(0, len(ops), 500):
        archive.write_batch(ops[start : start + 500])


def walk(conn: Connection, owner: str, limit: int, max_bytes: int = 1 << 30) -> list[int]:
    """Restore like a phone: page after page until done; the row ids received."""
    ids: list[int] = []
    cursor = 0
    while True:
        page = history_page(conn, owner, cursor, limit, max_bytes)
        ids += [_row_of(conn, item["log_index"]) for item in page.items]
        assert page.cursor >= cursor
        cursor = page.cursor
        if page.done:
            return ids


def _row_of(conn: Connection, log_index: int) -> int:
    return int(
        conn.execute("SELECT id FROM records WHERE log_index = ?", (log_index,)).fetchone()[0]
    )


def reference(conn: Connection, owner: str) -> list[int]:
    return [int(r[0]) for r in conn.execute(REFERENCE_SQL, (owner, 0))]


@pytest.fixture
def busy(archive: Archive) -> Iterator[Archive]:
    """A box with 12 owners, 2 phones each (one revoked), records interleaved, some destroyed."""
    phones: list[tuple[int, SigningKey, str]] = []
    for o in range(12):
        owner = f"owner-{o}"
        for name in ("Pixel", "iPhone"):
            device, key = new_phone(archive, owner=owner, name=name)
            phones.append((device, key, owner))
    push(archive, phones, 15)
    archive.write(writes.revoke_device(phones[1][0], "lost"))
    push(archive, phones[2:], 3)
    # Retention destroyed some records: their bodies are gone, the rows stay.
    archive.conn.execute("UPDATE records SET body = NULL, destroyed_at = 1 WHERE id % 7 = 3")
    yield archive


def test_pages_hold_the_same_records_as_before(busy: Archive) -> None:
    with closing(busy.reader()) as conn:
        for owner in ("owner-0", "owner-5", "owner-11", "nobody"):
            expected = reference(conn, owner)
            assert len(expected) > 20 or owner == "nobody"
            for limit in (1, 7, 200):
                assert walk(conn, owner, limit) == expected, (owner, limit)
            # A byte budget that cuts pages short resumes at the right record.
            assert walk(conn, owner, 50, max_bytes=600) == expected


def test_an_owner_with_more_devices_than_one_query_merges(archive: Archive) -> None:
    # 70 phones over the years: more arms than one query holds (chunks merged in Python).
    phones = []
    for n in range(70):
        device, key = new_phone(archive, owner="maitre.durand", name=f"phone {n}")
        phones.append((device, key, "maitre.durand"))
    other, other_key = new_phone(archive, owner="someone.else")
    push(archive, [*phones, (other, other_key, "someone.else")], 2)
    with closing(archive.reader()) as conn:
        expected = reference(conn, "maitre.durand")
        assert len(expected) == 140
        assert walk(conn, "maitre.durand", 9) == expected
        assert walk(conn, "maitre.durand", 500) == expected


@pytest.mark.parametrize("analyzed", [False, True])
def test_the_page_query_walks_the_index_in_order_without_sorting(
    busy: Archive, analyzed: bool
) -> None:
    if analyzed:
        busy.conn.execute("ANALYZE")
    with closing(busy.reader()) as conn:
        devices = owner_devices(conn, "owner-3")
        assert len(devices) == 2
        for arms in (devices[:1], devices):
            args: list[int] = []
            for device in arms:
                args += [device, 0]
            plan = [
                str(r[3])
                for r in conn.execute("EXPLAIN QUERY PLAN " + history_sql(len(arms)), [*args, 201])
            ]
            text = "\n".join(plan)
            assert "TEMP B-TREE" not in text, text
            # Each arm searches one device's slice of records_device, in id order.
            assert text.count("USING INDEX records_device (device_id=? AND id>?)") == len(arms), (
                text
            )
            if len(arms) > 1:
                assert "MERGE (UNION ALL)" in text, text


def vm_steps(conn: Connection, owner: str, cursor: int) -> int:
    """SQLite virtual-machine steps one page takes: work done, independent of machine load."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        page = history_page(conn, owner, cursor, 50, 1 << 30)
    finally:
        conn.set_progress_handler(None, 0)
    assert len(page.items) == 50
    return steps[0]


def test_a_page_costs_the_same_as_the_archive_grows(archive: Archive) -> None:
    phones = []
    for o in range(4):
        device, key = new_phone(archive, owner=f"owner-{o}")
        phones.append((device, key, f"owner-{o}"))
    second, second_key = new_phone(archive, owner="owner-0", name="iPad")
    phones.append((second, second_key, "owner-0"))
    push(archive, phones, 200)
    with closing(archive.reader()) as conn:
        small = vm_steps(conn, "owner-0", 0)
        middle = vm_steps(conn, "owner-0", reference(conn, "owner-0")[100])
    push(archive, phones, 1600)  # the owner now has 9 times as many records
    with closing(archive.reader()) as conn:
        first = vm_steps(conn, "owner-0", 0)
        later = vm_steps(conn, "owner-0", reference(conn, "owner-0")[100])
    # The old query sorted every remaining record of the owner: ~9x the steps.
    assert first < 1.5 * small, (small, first)
    assert later < 1.5 * middle, (middle, later)
