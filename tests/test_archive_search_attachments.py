"""Search's "with an attachment" filter: the same hits, however they are found.

Without words, "with an attachment" is read from the attachments table (the
conversations it names) when that costs less than scanning messages newest first
(search._attached_is_cheaper). The oracle is what the test itself wrote: which
message ids an attachment names, in which conversation. Both ways, and the one
chosen, must give exactly the oracle's hits, in the scan's order, page by page.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import new_archive, new_phone
from strongroom.archive import search, writes
from strongroom.archive.db import Connection
from strongroom.archive.search import MessageHit, SearchFilters, search_messages
from strongroom.archive.store import Archive
from support.records import BASE_AT_MS, attachment_fields, message_fields, signed

OWNERS = ("maitre.durand", "dr.roux")
WORDS = ("dossier", "audience", "facture", "rendez-vous", "ordonnance")


class Box:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.phones = {owner: new_phone(archive, owner=owner) for owner in OWNERS}
        self.attached: set[tuple[str, str, str]] = set()  # owner, conversation ref, message id
        self.n = 0

    def messages(self, owner: str, conv: str, count: int, rng: random.Random) -> list[str]:
        device, key = self.phones[owner]
        ids, ops = [], []
        for _ in range(count):
            self.n += 1
            text = " ".join(rng.sample(WORDS, 2))
            direction = ("in", "out")[self.n % 3 == 0]
            f = message_fields(text, conv=conv, direction=direction, n=self.n, peer="M. Martin")
            ids.append(f["id"])
            ops.append(writes.store_record(signed(key, f), device, owner))
        self.archive.write_batch(ops)
        return ids

    def attach(self, owner: str, conv: str, ref: str, *, names_it: bool = True) -> None:
        device, key = self.phones[owner]
        self.n += 1
        f = attachment_fields(ref, os.urandom(32), 10, conv=conv, n=self.n)
        self.archive.write(writes.store_record(signed(key, f), device, owner))
        if names_it:
            self.attached.add((owner, conv, ref))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    archive = new_archive(Path(tmp_path_factory.mktemp("search-attachments")) / "data")
    box = Box(archive)
    rng = random.Random(7)
    for owner in OWNERS:
        for c in range(6):
            conv = f"c{c}"
            ids = box.messages(owner, conv, 25, rng)
            for ref in rng.sample(ids, c % 3 + 1):  # after its message
                box.attach(owner, conv, ref)
            box.attach(owner, conv, ids[4])  # a second piece for one message
            box.attach(owner, conv, ids[4])
    durand = OWNERS[0]
    # Before its message (messages.has_attachment set then); then the message.
    box.n += 1
    early = message_fields("dossier en avance", conv="c1", n=box.n, peer="M. Martin")
    box.attach(durand, "c1", early["id"])
    device, key = box.phones[durand]
    archive.write(writes.store_record(signed(key, early), device, durand))
    # An id of c2 named in c3: not c2's message. An id no message has.
    c2_id = archive.conn.execute(
        "SELECT r.client_id FROM records r JOIN conversations c ON c.id = r.conversation_id"
        " WHERE c.ref = 'c2' AND c.owner = ? AND r.kind = 'message' LIMIT 1",
        (durand,),
    ).fetchone()[0]
    box.attach(durand, "c3", c2_id, names_it=(durand, "c3", c2_id) in box.attached)
    box.attach(durand, "c3", "no-such-message", names_it=False)
    box.messages(durand, "c9", 40, rng)  # a conversation with no attachment
    yield box
    archive.close()


def _client_id(conn: Connection, hit: MessageHit) -> str:
    return str(
        conn.execute("SELECT client_id FROM records WHERE id = ?", (hit.record_row,)).fetchone()[0]
    )


def _has(box: Box, hit: MessageHit) -> bool:
    return (hit.owner, hit.conversation_ref, _client_id(box.archive.conn, hit)) in box.attached


def _pages(conn: Connection, text: str, f: SearchFilters, limit: int) -> list[list[int]]:
    pages: list[list[int]] = []
    while not pages or pages[-1]:
        hits = search_messages(conn, text, f, limit=limit, offset=len(pages) * limit)
        pages.append([h.record_row for h in hits])
    return pages


# With words the full-text index drives: the way is for the filter alone.
@pytest.mark.parametrize(
    ("way", "text"),
    [(way, "") for way in ("chosen", "attachments", "scan")]
    + [("chosen", "dossier"), ("chosen", "audience fact")],
)
@pytest.mark.parametrize(
    "others",
    [
        {},
        {"owner": OWNERS[0]},
        {"direction": "in"},
        {"since_ms": BASE_AT_MS + 60, "until_ms": BASE_AT_MS + 250},
    ],
)
def test_the_attachment_filter_finds_what_the_attachments_name(
    box: Box, way: str, text: str, others: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if way != "chosen":
        monkeypatch.setattr(search, "_attached_is_cheaper", lambda *_: way == "attachments")
    conn = box.archive.conn
    everything = search_messages(conn, text, SearchFilters(**others), limit=500)
    assert 0 < len(everything) < 500
    for hit in everything:  # the flag shown on each hit (📎)
        assert hit.has_attachment == _has(box, hit), hit
    for value, limit in ((True, 4), (False, 50)):
        expected = [h.record_row for h in everything if _has(box, h) == value]
        assert expected  # the filter has something to find, and something to leave
        pages = _pages(conn, text, SearchFilters(**others, has_attachment=value), limit)
        assert pages == [expected[i : i + limit] for i in range(0, len(expected), limit)] + [[]]


def _steps(conn: Connection, f: SearchFilters) -> tuple[int, list[int]]:
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        hits = search_messages(conn, "", f)
    finally:
        conn.set_progress_handler(None, 0)
    return steps[0], [h.record_row for h in hits]


def test_a_search_for_attachments_does_not_read_every_message(archive: Archive) -> None:
    """Few or no attachments: the filter alone costs the same in a bigger archive
    (it scanned every message newest first, a seek into attachments each)."""
    box = Box(archive)
    rng = random.Random(3)
    with_attachment = SearchFilters(has_attachment=True)
    early = box.messages(OWNERS[0], "c0", 200, rng)
    none_small, hits = _steps(archive.conn, with_attachment)
    assert hits == []
    for c in range(1, 11):
        box.messages(OWNERS[c % 2], f"c{c}", 200, rng)
    none_big, hits = _steps(archive.conn, with_attachment)
    assert hits == []
    assert none_big < none_small + 200, (none_small, none_big)
    for ref in early[10:13]:
        box.attach(OWNERS[0], "c0", ref)
    few_small, hits = _steps(archive.conn, with_attachment)
    assert len(hits) == 3
    for c in range(11, 21):
        box.messages(OWNERS[c % 2], f"c{c}", 200, rng)
    few_big, hits_big = _steps(archive.conn, with_attachment)
    assert hits_big == hits
    assert few_big < few_small + 500, (few_small, few_big)
    # Without attachment: the scan, whose first page fills at once.
    without = replace(with_attachment, has_attachment=False)
    assert len(_steps(archive.conn, without)[1]) == 50
