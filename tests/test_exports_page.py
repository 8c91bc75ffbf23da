"""The /exports page costs what the chosen scope holds, not the archive (issue #20).

- Every statement the page runs (traced on its reader connection during real GETs of
  the page, of the count of a chosen scope and a refused POST) and every look-up the
  CLI's export makes to find its conversation or matter is an index search: no SCAN of
  the conversations, their senders, the records, the messages, the conversation index
  or the matters, as SQLite's own EXPLAIN QUERY PLAN says.
- The page lists no conversation, person or matter of the archive: its form's pickers
  search (/office/search); the count shown is the chosen scope's, exact.
- Hostile or odd input (SQL, control characters, digits that are not ASCII digits, a
  forged picked number) gets a clear refusal, never a 500 and never an export.
- `find_conversation` (the CLI's `export --conversation`) resolves a number, OWNER/REF,
  a phone reference or a name in its usual capitalisations, and says "no match" for
  anything else.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.box import Box
from strongroom.office import export_control, pickers
from strongroom.office.export_scope import find_conversation
from strongroom.web import office_views
from strongroom.web.state import STATE
from test_holds_page import WHOLE_TABLES, _conversation, _fill
from test_office_reads import plans_of, scans, traced_reads
from web_helpers import (
    ARCHIVIST_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    csrf_of,
    login,
    new_box,
    web_app,
)

WEIRD_NUMBERS = ("²", "#²", "١٢", "#١", "9" * 19)


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    b = new_box(tmp_path / "data")
    _fill(b)  # 30 clients of maître Durand, Dr Martin's "cabinet", matter 1 (Client 03)
    yield b
    await b.stop()


@pytest.fixture
async def client(box: Box, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})


async def _count(client: Client, token: str | None, **query: str) -> Any:
    headers = {} if token is None else {"X-CSRF-Token": token}
    return await client.get("/exports/count", params=query, headers=headers, allow_redirects=False)


def _replay(query: Callable[[Connection], Any], conn: Connection) -> Any:
    try:
        return query(conn)
    except pickers.NoMatch as refused:  # the refused POST: its look-ups ran all the same
        return refused


async def test_the_page_and_its_count_search_indexes_and_never_scan_a_table(
    box: Box, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = box.require_archive()
    conn = archive.reader()
    traced = traced_reads(monkeypatch, office_views, conn)
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    client07 = _conversation(box, "client-07")
    try:
        html = await (await client.get("/exports")).text()
        assert 'data-picker="conversation"' in html and 'data-picker="person"' in html
        for listed in ("Client 12", "maitre.durand", "2024-17", "<option"):
            assert listed not in html, listed  # no list of the archive's contents
        chosen = await (await client.get("/exports?matter=1")).text()
        assert 'value="2024-17 Client 03"' in chosen
        assert 'name="matter_id" id="export-matter-id" value="1"' in chosen
        token = csrf_of(html)
        counts = {
            # picked in the list (its number), typed without picking, a name, a matter
            "picked": {
                "kind": "conversation",
                "conversation": "x",
                "conversation_id": str(client07),
            },
            "typed": {"kind": "conversation", "conversation": "Client 07"},
            "person": {"kind": "person", "person": "client 03"},
            "matter": {"kind": "matter", "matter": "2024-17"},
            "days": {"kind": "conversation", "conversation": "Client 00", "since": "2015-01-05"},
        }
        answers = {}
        for name, query in counts.items():
            response = await _count(client, token, **query)
            assert response.status == 200, name
            answers[name] = await response.json()
        assert answers["picked"] == {"count": 2, "text": "2 messages will be exported"}
        assert answers["typed"]["count"] == answers["person"]["count"] == 2
        assert answers["matter"]["count"] == 2
        assert answers["days"] == {"count": 1, "text": "1 message will be exported"}
        # A typed value that names nothing: refused before any export.
        data = {"kind": "conversation", "conversation": "zz", "recipient": "T", "reason": "R"}
        refused = await client.post(
            "/exports", data={**data, "csrf_token": token}, allow_redirects=False
        )
        assert refused.status == 303 and refused.headers["Location"] == "/exports"
        plans = plans_of(conn, lambda: [_replay(query, conn) for query in traced])
        # The CLI's `export --conversation` and `--matter`, each way they are written.
        plans |= plans_of(
            conn,
            lambda: (
                [
                    find_conversation(conn, typed)
                    for typed in (
                        "7",
                        "#7",
                        "²",
                        "client-07",
                        "maitre.durand/client-07",
                        "m. petit",
                    )
                ]
                + [export_control._find_matter(conn, typed) for typed in ("2024-17", "1", "²")]
            ),
        )
        assert len(plans) > 10
        for table in WHOLE_TABLES:
            assert scans(plans, table) == [], table
    finally:
        conn.close()


async def test_the_count_answers_only_the_page_and_says_why_it_cannot(
    box: Box, client: Client
) -> None:
    response = await _count(client, None, kind="person", person="client 03")
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    await login(client, "auditeur", AUDITOR_PASSWORD)  # may not export: may not count
    assert (await client.get("/exports", allow_redirects=False)).status != 200
    assert (await _count(client, "x", kind="person", person="client 03")).status == 403
    await client.post("/logout", data={"csrf_token": csrf_of(await (await client.get("/")).text())})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    token = csrf_of(await (await client.get("/exports")).text())
    assert (await _count(client, None, kind="person", person="client 03")).status == 403
    assert (await _count(client, token[:-1], kind="person", person="client 03")).status == 403

    async def text_of(**query: str) -> str:
        response = await _count(client, token, **query)
        assert response.status == 200, query
        answer = await response.json()
        assert "count" not in answer, (query, answer)
        return str(answer["text"])

    assert "Several conversations match" in await text_of(kind="conversation", conversation="cl")
    for odd in WEIRD_NUMBERS:
        assert "No conversation matches" in await text_of(kind="conversation", conversation=odd)
        assert "No matter matches" in await text_of(kind="matter", matter=odd)
    assert "Say what to export" in await text_of(kind="person", person="\x00\x1f ")
    got = await text_of(kind="conversation", conversation="Client 07", since="2015-13-45")
    assert "YYYY-MM-DD" in got
    nobody = await (await _count(client, token, kind="person", person="' OR 1=1 --")).json()
    assert nobody == {"count": 0, "text": "0 messages will be exported"}


async def test_hostile_input_on_the_form_is_refused_and_exports_nothing(
    box: Box, client: Client
) -> None:
    await login(client, "archiviste", ARCHIVIST_PASSWORD)

    async def post(**fields: str) -> tuple[str, str]:
        token = csrf_of(await (await client.get("/exports")).text())
        data = {"recipient": "Tribunal", "reason": "RG 24/1", **fields, "csrf_token": token}
        response = await client.post("/exports", data=data, allow_redirects=False)
        assert response.status == 303, fields
        location = response.headers["Location"]
        return location, await (await client.get(location)).text()

    hostile = [
        "%",
        "' OR 1=1 --",
        '"; DROP TABLE records; --',
        "\x00\x1f\u202e",
        "x" * 5000,
        "🗄" * 50,
        *WEIRD_NUMBERS,
    ]
    for typed in hostile:
        for kind in ("conversation", "matter"):
            location, page = await post(kind=kind, **{kind: typed})
            assert location == "/exports", (kind, typed)
            assert f"No {kind} matches" in page or "Say what to export" in page, (kind, typed)
        # A forged picked number beside a typed value that names nothing: refused too.
        location, page = await post(kind="conversation", conversation="zz", conversation_id=typed)
        assert location == "/exports" and "No conversation matches" in page, typed
    location, page = await post(kind="conversation", conversation="cl")
    assert location == "/exports" and "Several conversations match" in page
    location, _ = await post(kind="conversation", conversation="Client 07", since="2015-02-30")
    assert location == "/exports"
    # A scope with nothing in it (a day with no message) is refused as the count says.
    location, page = await post(
        kind="conversation",
        conversation="maitre.durand/client-07",
        since="2001-01-01",
        until="2001-01-01",
    )
    assert location == "/exports" and "No message matches this export" in page
    assert client.app[STATE].jobs.for_owner("archiviste") == []  # no export started
    # The typed value that names one conversation starts its export.
    location, page = await post(kind="conversation", conversation="maitre.durand/client-07")
    assert location.startswith("/jobs/"), page


@pytest.mark.parametrize(
    ("language", "refused", "said"),
    [
        ("fr", "Rien n’a été exporté.", "Rien n'a été modifié."),
        ("en", "Nothing was exported.", "Nothing was changed."),
    ],
)
async def test_a_refused_export_says_nothing_was_exported(
    box: Box, aiohttp_client: AiohttpClient, language: str, refused: str, said: str
) -> None:
    """An export changes nothing anyway: a refused one says no export was made."""
    client = await aiohttp_client(web_app(box), headers={"Accept-Language": language})
    await login(client, "archiviste", ARCHIVIST_PASSWORD)
    token = csrf_of(await (await client.get("/exports")).text())
    typed = [
        ("conversation", "cl", {}),  # several
        ("conversation", "zz", {}),  # none
        ("matter", "zz", {}),  # none
        # One conversation, but no message in the dates: the form's own refusal,
        # worded (and its apostrophe typeset) as the pickers' ones.
        ("conversation", "maitre.durand/client-07", {"since": "2001-01-01", "until": "2001-01-01"}),
    ]
    for kind, value, dates in typed:
        data = {"recipient": "Tribunal", "reason": "RG 24/1", "kind": kind, kind: value, **dates}
        response = await client.post(
            "/exports", data={**data, "csrf_token": token}, allow_redirects=False
        )
        assert response.headers["Location"] == "/exports", (kind, value)
        page = html.unescape(await (await client.get("/exports")).text())
        token = csrf_of(page)
        assert refused in page and said not in page, (kind, value)
        if not dates:  # the live count: the pickers' refusals
            answer = await (await _count(client, token, kind=kind, **{kind: value})).json()
            assert answer["text"].endswith(refused), answer
    assert client.app[STATE].jobs.for_owner("archiviste") == []


def test_find_conversation_by_each_way_it_is_written(box: Box) -> None:
    archive = box.require_archive()
    martin = new_phone(archive, owner="dr.martin", name="Second")
    # Dr Martin also has a "client-01": that phone reference alone now names two.
    record = message(martin[1], "homonyme", conv="client-01", at=1_420_000_000_000, peer="")
    archive.write(writes.store_record(record, martin[0], "dr.martin"))
    conn = archive.conn
    client07, cabinet = _conversation(box, "client-07"), _conversation(box, "cabinet")
    for typed in (str(client07), f"#{client07}", "client-07", " maitre.durand/client-07 "):
        assert find_conversation(conn, typed) == client07, typed
    for typed in ("Client 07", "client 07", "CLIENT 07"):  # its other party's name
        assert find_conversation(conn, typed) == client07, typed
    assert find_conversation(conn, "m. petit") == cabinet
    assert find_conversation(conn, "dr.martin/cabinet") == cabinet
    assert find_conversation(conn, "maitre.durand/client-01") is not None
    # Ambiguous, nothing, a prefix, a name spelled another way (one seek per usual
    # capitalisation, never a read of every name): no match.
    for typed in ("client-01", "", "  ", "zz", "Client", "client.07", *WEIRD_NUMBERS, "\x00"):
        assert find_conversation(conn, typed) is None, typed


def test_the_cli_export_says_no_match_for_odd_numbers(box: Box) -> None:
    archive = box.require_archive()
    body = {"kind": "conversation", "actor": "a", "recipient": "r", "reason": "w"}
    for odd in WEIRD_NUMBERS:
        with pytest.raises(ValueError, match="no single conversation matches"):
            export_control.resolve_request(archive, {**body, "conversation": odd})
        with pytest.raises(ValueError, match="no matter"):
            export_control.resolve_request(archive, {**body, "kind": "matter", "matter": odd})
    request = export_control.resolve_request(archive, {**body, "conversation": "client-07"})
    assert request.scope.conversation_id == _conversation(box, "client-07")
    matter = export_control.resolve_request(archive, {**body, "kind": "matter", "matter": "1"})
    assert matter.scope.matter_id == 1
