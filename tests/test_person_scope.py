"""An export by person finds the person's conversations by indexed look-ups
(office/person_scope.py, schema 11) with the same result as office.facts's rule
(owner, other party, sender, mail partner) over every conversation and every message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_helpers import message
from strongroom.archive.db import Connection
from strongroom.office import person_scope
from strongroom.office.erasure import erase_in_txn
from strongroom.office.export_scope import ExportScope, count_records
from strongroom.office.facts import load_facts, normalise_person, senders_not_kept
from test_office_support import T0, Box, new_box, new_phone, store

PERSONS = (
    "dr.martin",
    "Dr Martin",
    "maitre.durand",
    "M. Petit",
    "Mme Dupont",
    "mme  dupont",
    "M. Bernard",
    "Léa Roux",
    "personne",
    "",
)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def push(
    box: Box, phone: tuple[int, object], text: str, conv: str, owner: str, **kw: object
) -> int:
    record = message(phone[1], text, conv=conv, at=kw.pop("at", T0), **kw)  # type: ignore[arg-type]
    store(box, phone[1], phone[0], owner, record)  # type: ignore[arg-type]
    return int(box.reader_scalar("SELECT id FROM records WHERE record_id = ?", record.record_id))


def facts_rule(conn: Connection, person: str) -> list[int]:
    """The rule as it was computed before schema 11: the facts of every conversation,
    with the senders of every message (export_scope before person_scope)."""
    facts = load_facts(conn, extra_senders=senders_not_kept(conn))
    return sorted(f.id for f in facts.values() if f.involves(person))


def every_kind_of_involvement(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    martin = new_phone(box.archive, "dr.martin", "Fairphone")
    roux = new_phone(box.archive, "Léa Roux", "Pixel")
    push(box, durand, "named", "c-named", "maitre.durand", peer="Dr. Martin")
    push(box, martin, "own", "c-own", "dr.martin", peer="maitre.durand")
    push(
        box,
        durand,
        "sender",
        "c-sender",
        "maitre.durand",
        direction="in",
        **{"from": "DR.  martin"},
    )
    # No other party (an older phone), none of his messages, but mail between the owners.
    push(box, durand, "mail", "c-mail", "maitre.durand", peer="")
    push(box, roux, "blank peer", "c-blank", "Léa Roux", peer="  ")
    box.archive.conn.execute(
        "INSERT INTO mail (mail_id, sender_device, recipient_owner, payload, created_at)"
        " VALUES (?, ?, 'dr.martin', x'00', 0)",
        (b"m" * 16, durand[0]),
    )
    box.archive.conn.execute(
        "INSERT INTO mail (mail_id, sender_device, recipient_owner, payload, created_at)"
        " VALUES (?, ?, 'Mme Dupont', x'00', 0)",
        (b"n" * 16, roux[0]),
    )
    push(box, durand, "other", "c-other", "maitre.durand", peer="M. Petit")
    push(
        box,
        durand,
        "dupont",
        "c-dupont",
        "maitre.durand",
        direction="in",
        peer="Cabinet",
        **{"from": "Mme Dupont"},
    )
    gone = push(
        box,
        durand,
        "bernard",
        "c-bernard",
        "maitre.durand",
        direction="in",
        peer="Cabinet",
        **{"from": "M. Bernard"},
    )
    push(box, durand, "reply", "c-bernard", "maitre.durand", peer="Cabinet")
    push(
        box,
        durand,
        "bernard 2",
        "c-bernard2",
        "maitre.durand",
        direction="in",
        peer="Cabinet",
        **{"from": "M. Bernard"},
    )
    # Erasure removes M. Bernard's last message in c-bernard: the pair leaves the table
    # lawfully (senders_removed keeps it; no message is left, so it is not his any more).
    box.archive.write(lambda txn: erase_in_txn(txn, [gone]))


def test_the_indexed_look_ups_find_what_the_facts_of_every_conversation_find(box: Box) -> None:
    every_kind_of_involvement(box)
    conn = box.archive.conn
    for person in PERSONS:
        assert person_scope.person_conversations(conn, person) == facts_rule(conn, person), person
    refs = {int(i): str(r) for i, r in conn.execute("SELECT id, ref FROM conversations").fetchall()}
    martin = {refs[i] for i in person_scope.person_conversations(conn, "dr.martin")}
    assert martin == {"c-named", "c-own", "c-sender", "c-mail"}
    dupont = {refs[i] for i in person_scope.person_conversations(conn, "Mme Dupont")}
    assert dupont == {"c-dupont", "c-blank"}
    bernard = {refs[i] for i in person_scope.person_conversations(conn, "M. Bernard")}
    assert bernard == {"c-bernard2"}


@pytest.mark.parametrize("damage", ["deleted", "renamed"])
def test_a_pair_taken_from_conversation_senders_still_brings_its_conversation(
    box: Box, damage: str
) -> None:
    every_kind_of_involvement(box)
    conn = box.archive.conn
    if damage == "deleted":
        conn.execute("DELETE FROM conversation_senders WHERE sender = 'Mme Dupont'")
    else:
        conn.execute("UPDATE conversation_senders SET sender = 'X' WHERE sender = 'Mme Dupont'")
    for person in PERSONS:
        assert person_scope.person_conversations(conn, person) == facts_rule(conn, person), person
    scope = ExportScope("person", person="mme dupont")
    assert count_records(conn, scope) == 2  # c-dupont's message and c-blank's


def test_every_person_look_up_keeps_an_indexed_plan(box: Box) -> None:
    every_kind_of_involvement(box)
    conn = box.archive.conn
    queries = [
        *person_scope._FIRST.values(),
        *person_scope._NEXT.values(),
        person_scope._BY_OWNER,
        person_scope._BY_PEER,
        person_scope._BY_PEER_AND_OWNER,
        person_scope._BY_SENDER,
        person_scope._REMOVED,
        person_scope._STILL_WRITTEN,
    ]
    for sql in queries:
        args = (1, "x", "y")[: sql.count("?") if "?1" not in sql else 2]
        plan = [str(step[3]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
        scans = [
            s for s in plan if re.match(r"SCAN (?!json_each|CONSTANT ROW)", s) or "TEMP B-TREE" in s
        ]
        assert not scans, (sql, plan)


def test_the_persons_picker_walks_the_name_indexes_with_the_same_names(box: Box) -> None:
    from strongroom.office.facts import persons_of

    every_kind_of_involvement(box)
    conn = box.archive.conn
    union = [
        str(r[0])
        for r in conn.execute(
            "SELECT owner FROM conversations UNION SELECT peer FROM conversations"
            " UNION SELECT sender FROM conversation_senders"
        )
    ]
    names: dict[str, str] = {}
    for name in union:
        if name.strip():
            names.setdefault(normalise_person(name.strip()), name.strip())
    assert persons_of(conn) == sorted(names.values(), key=normalise_person)
    assert "DR.  martin" in persons_of(conn) and "Léa Roux" in persons_of(conn)
