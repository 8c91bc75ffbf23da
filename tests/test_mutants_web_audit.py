"""The audit page's filters narrow the trail: an auditor asking for one action sees only it.

Over HTTP with a logged-in auditor session and a real box, as the other web
page tests do. Each row of the table is parsed, so a filter that is ignored
(every event shown) fails here, not only a filter that hides the wanted one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from strongroom.archive.audit_reads import audit_events
from strongroom.box import Box
from web_helpers import ADMIN_PASSWORD, AUDITOR_PASSWORD, login, new_box, web_app

Client = TestClient[web.Request, web.Application]
# Each row names its actor and action code in attributes (the cells show translated names).
ROW = re.compile(r'<tr data-actor="([^"]*)" data-action="([^"]*)"')


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    b = new_box(tmp_path / "data")
    yield b
    await b.stop()


@pytest.fixture
async def client(box: Box, aiohttp_client: Callable[..., Any]) -> Client:
    return await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})  # type: ignore[no-any-return]


async def rows(client: Client, **params: str) -> list[tuple[str, str]]:
    """(actor, action) of every row the audit page shows for these filters."""
    response = await client.get("/audit", params=params)
    assert response.status == 200
    return ROW.findall(await response.text())


def stored_actions(box: Box) -> list[str]:
    conn = box.require_archive().reader()
    try:
        return [e.action for e in audit_events(conn, limit=1000)]
    finally:
        conn.close()


async def test_the_action_filter_shows_only_that_action(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    for query in ("facture", "devis"):
        await client.get("/archive", params={"q": query})
    await login(client, "auditeur", AUDITOR_PASSWORD)

    everything = await rows(client)
    # The trail holds other actions too (at least the logins), or the test proves nothing.
    assert {"login", "archive.search"} <= {action for _, action in everything}
    assert len(everything) == len(stored_actions(box))

    searches = await rows(client, action="archive.search")
    assert searches == [("admin", "archive.search")] * 2

    logins = await rows(client, action="login")
    assert sorted(actor for actor, _ in logins) == ["admin", "auditeur"]
    assert {action for _, action in logins} == {"login"}


async def test_action_and_actor_filters_combine(client: Client, box: Box) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    await client.get("/archive", params={"q": "facture"})
    await login(client, "auditeur", AUDITOR_PASSWORD)
    assert await rows(client, action="login", actor="auditeur") == [("auditeur", "login")]
    assert await rows(client, action="archive.search", actor="auditeur") == []
    assert await rows(client, action="no.such.action") == []
