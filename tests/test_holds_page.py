"""The /office holds page costs what its holds cover, not the archive (issue #20).

- Every statement the page runs (traced on its reader connection during a real GET
  /office) and every look-up of its pickers is an index search: no SCAN of the
  conversations, their senders, the records, the messages or the conversation index,
  as SQLite's own EXPLAIN QUERY PLAN says.
- The counts it shows are exact: each hold's reach equals the count made the long way
  (every live record read, each checked with `Hold.covers` on `load_facts`), also
  after a destruction and for date ranges at the edges of a conversation's life, both
  ways a date range is counted (its records, or the conversations alive across it).
- A recent date range (the usual hold) costs its records: 200 conversations alive
  across it, without a record in it, leave the SQLite steps of its reach as they were.
- The pickers' endpoint answers only a logged-in archivist's or admin's page (its CSRF
  token in X-CSRF-Token), refuses what is too long or of an unknown kind, treats SQL
  and LIKE metacharacters as letters, and never answers more than 20.
- Without JavaScript a typed conversation or matter is resolved by the box: one
  match is held, none or several are refused with a message saying which.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.box import Box
from strongroom.office import holds, matters, pickers, retention
from strongroom.office.facts import load_facts
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from strongroom.office.service import find_conversation
from strongroom.web import office_views, records_views
from test_office_reads import plans_of, scans, traced_reads
from web_helpers import (
    ADMIN_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    csrf_of,
    login,
    new_box,
    web_app,
)

T0 = 1_420_000_000_000  # 2014-12-31
DAY = 86_400_000
WHOLE_TABLES = (
    "conversations",
    "conversation_senders",
    "records",
    "messages",
    "conv_folded",
    "conv_recent",
    "conv_live",
    "matters",
)


def _fill(box: Box) -> None:
    """Thirty clients of maître Durand over thirty days (two records each), Dr Martin's
    own phone, a matter, and a sender known only by name."""
    archive = box.require_archive()
    durand = new_phone(archive, owner="maitre.durand", name="Pixel")
    martin = new_phone(archive, owner="dr.martin", name="Fairphone")
    ops = []
    for n in range(30):
        for k in range(2):
            at = T0 + n * DAY + k * 3_600_000
            record = message(
                durand[1], f"c{n} m{k}", conv=f"client-{n:02}", at=at, peer=f"Client {n:02}"
            )
            ops.append(writes.store_record(record, durand[0], "maitre.durand"))
    ops.append(
        writes.store_record(
            message(martin[1], "note", conv="cabinet", at=T0 + 3 * DAY, peer="M. Petit"),
            martin[0],
            "dr.martin",
        )
    )
    ops.append(
        writes.store_record(
            message(
                durand[1],
                "de sa part",
                conv="client-00",
                at=T0 + 5 * DAY,
                peer="Client 00",
                direction="in",
                **{"from": "Mme Roux"},
            ),
            durand[0],
            "maitre.durand",
        )
    )
    for op in ops:
        archive.write(op)
    matter = archive.write(matters.create_matter("2024-17", "Client 03", "", "admin"))
    archive.write(matters.attach(matter, "admin", person="Client 03"))


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    b = new_box(tmp_path / "data")
    _fill(b)
    yield b
    await b.stop()


@pytest.fixture
async def client(box: Box, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})


def _conversation(box: Box, ref: str) -> int:
    row = (
        box.require_archive()
        .conn.execute("SELECT id FROM conversations WHERE ref = ?", (ref,))
        .fetchone()
    )
    return int(row[0])


def _the_long_way(conn: Connection, hold: holds.Hold) -> tuple[int, int]:
    """(conversations, live records) a hold covers: every live record read and checked."""
    facts = load_facts(conn)
    covered = [
        int(cid)
        for cid, at in conn.execute(
            "SELECT conversation_id, sent_at FROM records WHERE destroyed_at IS NULL"
        )
        if hold.covers(facts[int(cid)], int(at))
    ]
    return len(set(covered)), len(covered)


# -- the reads ----------------------------------------------------------------------------


async def test_the_page_and_its_pickers_search_indexes_and_never_scan_a_table(
    box: Box, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = box.require_archive()
    for spec in (
        HoldSpec("person", "plainte", person="dr.martin"),
        HoldSpec("conversation", "saisie", conversation_id=_conversation(box, "client-07")),
        HoldSpec("matter", "litige", matter_id=1),
        HoldSpec("date_range", "audit", from_ms=T0 + 2 * DAY, to_ms=T0 + 4 * DAY),
    ):
        archive.write(place_hold(spec, "admin"))
    archive.write(assign_policy("conversation", str(_conversation(box, "client-09")), 1, "a"))
    conn = archive.reader()
    # The page's own reads, on a connection whose statements we see.
    traced = traced_reads(monkeypatch, office_views, conn)
    await login(client, "admin", ADMIN_PASSWORD)
    try:
        html = await (await client.get("/office")).text()
        assert "maitre.durand ↔ Client 07" in html and "maitre.durand ↔ Client 09" in html
        assert "Client 12" not in html  # no list of every conversation
        plans = plans_of(conn, lambda: [query(conn) for query in traced])
        plans |= plans_of(
            conn,
            lambda: (
                [
                    pickers.find(conn, kind, text)
                    for kind in pickers.KINDS
                    for text in (
                        "cl",
                        "Client 0",
                        "maitre.durand/client-1",
                        "maitre.durand ↔ Client 07",
                        "#3",
                        "dr",
                        "m",
                        "20",
                    )
                ]
                # `hold add --conversation OWNER/REF` (the CLI), as `hold find` prints it.
                + [find_conversation(conn, "maitre.durand/client-01")]
                # A phone's reference alone: one (owner, ref) seek per owner.
                + [find_conversation(conn, "client-01")]
            ),
        )
        assert len(plans) > 10
        for table in WHOLE_TABLES:
            assert scans(plans, table) == [], table
        # A date-range hold reads its range's records, phone by phone, bounded both ends
        # (how many, then their counts by conversation).
        dated = [steps for sql, steps in plans.items() if "records_dedup" in sql]
        both_ends = "records_dedup (device_id=? AND sent_at>? AND sent_at<?)"
        assert len(dated) == 2 and all(any(both_ends in s for s in d) for d in dated), dated
    finally:
        conn.close()


@pytest.mark.parametrize("side", ["records", "conversations"])
async def test_each_hold_reaches_what_the_long_count_finds(
    box: Box, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways of counting a date range (its records, or the conversations alive
    across it when they are fewer: holds._live_counts_between) count the same."""
    if side == "conversations":
        monkeypatch.setattr(holds, "RANGE_RECORDS", 0)
        monkeypatch.setattr(holds, "CONVERSATIONS_PER_RECORD", 10**9)
    archive = box.require_archive()
    specs = [
        HoldSpec("person", "p", person="DR MARTIN"),
        HoldSpec("person", "p", person="mme roux"),
        HoldSpec("person", "p", person="personne"),
        HoldSpec("conversation", "c", conversation_id=_conversation(box, "client-04")),
        HoldSpec("matter", "m", matter_id=1),
        # Before the first record, on the first instant, inside, across the last record.
        HoldSpec("date_range", "d", from_ms=T0 - 10 * DAY, to_ms=T0 - 1),
        HoldSpec("date_range", "d", from_ms=T0, to_ms=T0),
        HoldSpec("date_range", "d", from_ms=T0 + DAY + 1, to_ms=T0 + 6 * DAY),
        HoldSpec("date_range", "d", from_ms=T0 + 29 * DAY + 3_600_000, to_ms=T0 + 400 * DAY),
    ]
    for spec in specs:
        archive.write(place_hold(spec, "admin"))
    # Retention destroys client-02 and client-05 (nothing above holds them then).
    policy = archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    for ref in ("client-02", "client-05"):
        archive.write(assign_policy("conversation", str(_conversation(box, ref)), policy, "a"))
    conn = archive.reader()
    try:
        found = holds.list_holds(conn)
        reach = holds.hold_reach(conn, found)
        long_way = {h.id: _the_long_way(conn, h) for h in found}
        assert {i: (r.conversations, r.records) for i, r in reach.items()} == long_way
        assert long_way[found[0].id] == (1, 1)  # Dr Martin's own conversation
        # Day 1's second record to day 6's first: ten of client-01..06, Dr Martin's note
        # and Mme Roux's message.
        assert long_way[found[7].id] == (8, 12)
        plans = plans_of(conn, lambda: holds.hold_reach(conn, found))
        driving = "conv_live_from" if side == "conversations" else "records_dedup"
        assert any(driving in sql for sql in plans), plans
        for table in WHOLE_TABLES:
            assert scans(plans, table) == [], table
    finally:
        conn.close()
    # Lift the holds that keep them, destroy, count again: the destroyed no longer count.
    for hold in found[5:]:
        archive.write(holds.lift_hold(hold.id, "admin", "test"))
    done = retention.run(archive, int(time.time() * 1000))
    assert done.destruction.destroyed == 4
    for spec in specs[5:]:
        archive.write(place_hold(spec, "admin"))
    conn = archive.reader()
    try:
        active = holds.list_holds(conn, active_only=True)
        reach = holds.hold_reach(conn, active)
        assert {h.id: (reach[h.id].conversations, reach[h.id].records) for h in active} == {
            h.id: _the_long_way(conn, h) for h in active
        }
        # client-02 and client-05 destroyed: two conversations, four records less.
        assert (reach[active[-2].id].conversations, reach[active[-2].id].records) == (6, 8)
    finally:
        conn.close()


def _vm_steps(conn: Connection, work: Callable[[], object]) -> int:
    """SQLite virtual machine instructions `work` runs on `conn` (its progress handler,
    called at each one): what a read costs, whatever the machine's load."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(step, 1)
    try:
        work()
    finally:
        conn.set_progress_handler(None, 1)
    return steps


async def test_a_recent_date_range_hold_costs_its_records_not_the_conversations(
    box: Box,
) -> None:
    """The usual litigation hold is on recent dates: nearly every conversation of a
    long-kept archive began before it ends. Two conversations write in the range; then
    200 more that began before it and wrote after it (none in it) change nothing the
    hold's reach reads."""
    archive = box.require_archive()
    phone = new_phone(archive, owner="maitre.durand", name="Pixel 2")
    start, end = T0 + 40 * DAY, T0 + 41 * DAY

    def records(convs: list[str], ats: list[int]) -> None:
        archive.write_batch(
            [
                writes.store_record(message(phone[1], c, conv=c, at=at), phone[0], "maitre.durand")
                for c in convs
                for at in ats
            ]
        )

    records(["recent-a", "recent-b"], [start + 3_600_000])
    hold = holds.Hold(1, HoldSpec("date_range", "r", from_ms=start, to_ms=end), "a", 0, *[None] * 3)
    conn = archive.reader()
    try:
        before = _vm_steps(conn, lambda: holds.hold_reach(conn, [hold]))
        assert holds.hold_reach(conn, [hold])[1] == holds.HoldReach(2, 2)
    finally:
        conn.close()
    records([f"long-{n:03}" for n in range(200)], [start - 5 * DAY, end + 5 * DAY])
    conn = archive.reader()
    try:
        after = _vm_steps(conn, lambda: holds.hold_reach(conn, [hold]))
        assert (
            holds.hold_reach(conn, [hold])[1]
            == holds.HoldReach(2, 2)
            == holds.HoldReach(*_the_long_way(conn, hold))
        )
    finally:
        conn.close()
    # The same reads, but the step past the range's end (a record now follows it); the
    # conversations' count would add a probe each, tens of steps for each of the 200.
    assert after - before <= 5, (before, after)


# -- the pickers ---------------------------------------------------------------------------


async def test_pickers_find_by_first_letters_in_any_capitalisation(box: Box) -> None:
    conn = box.require_archive().conn
    labels = [f.label for f in pickers.find(conn, "conversation", "client 1")]
    assert labels == [f"maitre.durand ↔ Client {n}" for n in range(10, 20)]
    assert len(pickers.find(conn, "conversation", "CLIENT")) == pickers.LIMIT
    assert [f.label for f in pickers.find(conn, "conversation", "m. p")] == ["dr.martin ↔ M. Petit"]
    assert len(pickers.find(conn, "conversation", "maitre.durand/client-2")) == 10
    assert [f.label for f in pickers.find(conn, "person", "m")] == [
        "maitre.durand",
        "Mme Roux",
        "M. Petit",
    ]
    assert [f.label for f in pickers.find(conn, "matter", "2024")] == ["2024-17 Client 03"]
    assert pickers.resolve_conversation(conn, "dr.martin") == _conversation(box, "cabinet")
    assert pickers.resolve_conversation(conn, "Client 07") == _conversation(box, "client-07")
    # The label the page shows, typed (or left in the field) as it is.
    label = "maitre.durand ↔ Client 07"
    assert pickers.resolve_conversation(conn, label) == _conversation(box, "client-07")
    assert pickers.resolve_matter(conn, "2024-17") == 1
    for typed, several in (("client", True), ("zz", False), ("", False), ("#999", False)):
        with pytest.raises(pickers.NoMatch) as refused:
            pickers.resolve_conversation(conn, typed)
        assert refused.value.several is several


# -- the endpoint --------------------------------------------------------------------------


async def _search(client: Client, token: str | None, **query: str) -> Any:
    headers = {} if token is None else {"X-CSRF-Token": token}
    return await client.get("/office/search", params=query, headers=headers, allow_redirects=False)


async def test_the_search_endpoint_refuses_what_it_should(box: Box, client: Client) -> None:
    response = await _search(client, None, kind="conversation", q="cl")
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    await login(client, "admin", ADMIN_PASSWORD)
    token = csrf_of(await (await client.get("/office")).text())
    assert (await _search(client, None, kind="conversation", q="cl")).status == 403
    assert (await _search(client, token[:-1], kind="conversation", q="cl")).status == 403
    assert (await _search(client, token, kind="records", q="cl")).status == 400
    assert (await _search(client, token, kind="person", q="x" * 201)).status == 400
    answer = await (await _search(client, token, kind="conversation", q="cl")).json()
    assert len(answer["results"]) == 20
    assert answer["results"][0] == {
        "value": str(_conversation(box, "client-00")),
        "label": "maitre.durand ↔ Client 00",
        "detail": f"#{_conversation(box, 'client-00')} · client-00",
    }
    hostile = [
        "%",
        "_",
        "' OR 1=1 --",
        '"; DROP TABLE legal_holds; --',
        "Client*",
        "NEAR(client)",
        "\\",
        "Cl%nt",
        "\x00\x1f\u202e",
        "x" * 200,
        "🗄" * 50,
        # Digits to str.isdigit() that int() refuses or reads: only ASCII digits are a number.
        "²",
        "#²",
        "١٢",
        "#١",
        "9" * 19,
    ]
    for q in hostile:
        for kind in pickers.KINDS:
            response = await _search(client, token, kind=kind, q=q)
            assert response.status == 200, (kind, q)
            assert (await response.json()) == {"results": []}, (kind, q)
    conn = box.require_archive().conn
    assert conn.execute("SELECT count(*) FROM legal_holds").fetchone()[0] == 0


async def test_the_auditor_reads_the_page_but_does_not_search(client: Client) -> None:
    await login(client, "auditeur", AUDITOR_PASSWORD)
    page = await (await client.get("/office")).text()
    assert 'id="new-hold"' not in page
    response = await _search(client, csrf_of(page), kind="person", q="m")
    assert response.status == 403


# -- without JavaScript --------------------------------------------------------------------


async def test_a_typed_conversation_or_matter_is_resolved_or_refused(
    box: Box, client: Client
) -> None:
    await login(client, "admin", ADMIN_PASSWORD)

    async def hold(**fields: str) -> str:
        page = await (await client.get("/office")).text()
        data = {"reason": "r", **fields, "csrf_token": csrf_of(page)}
        return await (await client.post("/office/holds", data=data)).text()

    conn = box.require_archive().conn

    def held() -> list[tuple[Any, ...]]:
        return conn.execute(
            "SELECT scope, conversation_id, matter_id FROM legal_holds ORDER BY id"
        ).fetchall()

    assert "Several conversations match" in await hold(scope="conversation", conversation="cl")
    assert "No conversation matches" in await hold(scope="conversation", conversation="zz")
    assert "No matter matches" in await hold(scope="matter", matter="1999")
    # Digits that are not ASCII digits, typed or in the hidden field: refused, no error.
    for odd in ("²", "#²", "١", "9" * 19):
        assert "No conversation matches" in await hold(scope="conversation", conversation=odd)
        assert "No matter matches" in await hold(scope="matter", matter=odd)
        got = await hold(scope="conversation", conversation="zz", conversation_id=odd)
        assert "No conversation matches" in got
    assert held() == []
    html = await hold(scope="conversation", conversation="Client 07")
    assert "Legal hold placed." in html and "maitre.durand ↔ Client 07" in html
    # The picked number wins over the label shown beside it.
    picked = str(_conversation(box, "cabinet"))
    await hold(scope="conversation", conversation="whatever", conversation_id=picked)
    await hold(scope="matter", matter="2024")
    assert held() == [
        ("conversation", _conversation(box, "client-07"), None),
        ("conversation", int(picked), None),
        ("matter", None, 1),
    ]
    # The policy form resolves the same way.
    page = await (await client.get("/office")).text()
    data = {"scope": "conversation", "conversation": "m. p", "policy": "1"}
    html = await (
        await client.post("/office/assign", data={**data, "csrf_token": csrf_of(page)})
    ).text()
    assert "Policy assigned." in html
    (subject,) = conn.execute(
        "SELECT subject FROM retention_assignments WHERE scope = 'conversation'"
    ).fetchone()
    assert subject == picked


async def test_the_matters_page_names_its_own_conversations_and_attaches_a_typed_one(
    box: Box, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/office/matters: the same pickers (it listed every conversation once per matter)."""
    archive = box.require_archive()
    archive.write(matters.attach(1, "admin", conversation_id=_conversation(box, "client-08")))
    conn = archive.reader()
    traced = traced_reads(monkeypatch, records_views, conn)
    await login(client, "admin", ADMIN_PASSWORD)
    try:
        page = await (await client.get("/office/matters")).text()
        assert "maitre.durand ↔ Client 08" in page and "Client 12" not in page
        plans = plans_of(conn, lambda: [query(conn) for query in traced])
        assert plans
        for table in WHOLE_TABLES[:-1]:  # the matters themselves are the page
            assert scans(plans, table) == [], table

        async def attach(typed: str) -> str:
            data = {"action": "attach", "conversation": typed, "csrf_token": csrf_of(page)}
            return await (await client.post("/office/matters/1", data=data)).text()

        assert "Several conversations match" in await attach("client 1")
        assert "No conversation matches" in await attach("²")
        assert "Matter updated." in await attach("Client 11")
    finally:
        conn.close()
    attached = archive.conn.execute(
        "SELECT conversation_id FROM matter_conversations WHERE matter_id = 1 ORDER BY 1"
    ).fetchall()
    assert attached == [(_conversation(box, "client-08"),), (_conversation(box, "client-11"),)]
