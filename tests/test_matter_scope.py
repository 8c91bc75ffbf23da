"""An export by matter finds the matter's conversations by indexed look-ups
(office/matter_scope.py, over office/person_scope.py) with the same result as
office.facts's rule over every conversation and every message: attached, or through
one of the matter's persons other than the conversation's owner."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.archive.db import Connection
from strongroom.office import matter_scope, matters
from strongroom.office.export_scope import ExportScope, count_records
from strongroom.office.facts import load_facts, senders_not_kept
from test_office_support import Box, new_box
from test_person_scope import every_kind_of_involvement
from test_retention_flat import vm_steps


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def facts_rule(conn: Connection, matter_id: int) -> list[int]:
    """The rule as export_scope computed it before matter_scope: the facts of every
    conversation, with the senders of every message."""
    facts = load_facts(conn, extra_senders=senders_not_kept(conn)).values()
    return sorted(f.id for f in facts if any(m.id == matter_id for m in f.matters))


def refs(conn: Connection) -> dict[str, int]:
    return {str(r): int(i) for i, r in conn.execute("SELECT id, ref FROM conversations")}


def several_matters(box: Box) -> dict[str, int]:
    """Matters over every kind of involvement of test_person_scope's archive."""
    every_kind_of_involvement(box)
    conv = refs(box.archive.conn)
    made: dict[str, int] = {}

    def matter(
        ref: str, *, conversations: tuple[str, ...] = (), persons: tuple[str, ...] = ()
    ) -> None:
        mid = int(box.archive.write(matters.create_matter(ref, "", "", "admin")))
        for c in conversations:
            box.archive.write(matters.attach(mid, "admin", conversation_id=conv[c]))
        for p in persons:
            box.archive.write(matters.attach(mid, "admin", person=p))
        made[ref] = mid

    # Other party (c-named), sender (c-sender), mail partner (c-mail), owner (c-own: not
    # his through this matter) and one attached conversation.
    matter("martin", conversations=("c-other",), persons=("Dr Martin",))
    # A sender and a mail partner (Mme Dupont), a sender with a removed pair (Bernard).
    matter("dupont", persons=("mme  dupont", "M. Bernard"))
    # The owner of almost everything: only in the others' conversations (c-own's other
    # party; "Maître Durand" is the default sender of an outgoing message: c-blank).
    matter("durand", persons=("Maître Durand",))
    # An owner and nothing else (Léa Roux), and one whose name is nowhere.
    matter("roux", persons=("Léa Roux", "personne"))
    matter("attached", conversations=("c-bernard", "c-own"))
    matter("empty")
    return made


def test_the_indexed_look_ups_find_what_the_facts_of_every_conversation_find(box: Box) -> None:
    made = several_matters(box)
    conn = box.archive.conn
    for ref, mid in made.items():
        assert matter_scope.matter_conversations(conn, mid) == facts_rule(conn, mid), ref
    assert matter_scope.matter_conversations(conn, max(made.values()) + 1) == []
    conv = refs(conn)
    named = {
        ref: {c for c, i in conv.items() if i in matter_scope.matter_conversations(conn, mid)}
        for ref, mid in made.items()
    }
    assert named == {
        "martin": {"c-other", "c-named", "c-sender", "c-mail"},
        "dupont": {"c-dupont", "c-blank", "c-bernard2"},
        "durand": {"c-own", "c-blank"},
        "roux": set(),
        "attached": {"c-bernard", "c-own"},
        "empty": set(),
    }
    # The export reads them: c-other, c-named, c-sender and c-mail hold a message each.
    assert count_records(conn, ExportScope("matter", matter_id=made["martin"])) == 4


@pytest.mark.parametrize("damage", ["deleted", "renamed"])
def test_a_pair_taken_from_conversation_senders_still_brings_its_conversation(
    box: Box, damage: str
) -> None:
    made = several_matters(box)
    conn = box.archive.conn
    if damage == "deleted":
        conn.execute("DELETE FROM conversation_senders WHERE sender = 'Mme Dupont'")
    else:
        conn.execute("UPDATE conversation_senders SET sender = 'X' WHERE sender = 'Mme Dupont'")
    for ref, mid in made.items():
        assert matter_scope.matter_conversations(conn, mid) == facts_rule(conn, mid), ref
    assert refs(conn)["c-dupont"] in matter_scope.matter_conversations(conn, made["dupont"])


def test_every_matter_look_up_keeps_an_indexed_plan(box: Box) -> None:
    several_matters(box)
    conn = box.archive.conn
    queries = [
        matter_scope._MATTER,
        matter_scope._ATTACHED,
        matter_scope._PERSONS,
        matter_scope._BY_OWNER,
    ]
    for sql in queries:
        plan = [str(step[3]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (1,))]
        scans = [s for s in plan if re.match(r"SCAN ", s) or "TEMP B-TREE" in s]
        assert not scans, (sql, plan)


def test_a_matter_is_found_by_reference_or_number_without_reading_the_others(box: Box) -> None:
    made = several_matters(box)
    conn = box.archive.conn
    listed = {m.ref: m for m in matters.list_matters(conn)}
    for ref, mid in made.items():
        assert matters.find_matter(conn, ref) == listed[ref]
        assert matters.find_matter(conn, f" {mid} ") == listed[ref]
    assert listed["martin"].persons and listed["attached"].conversations
    for unknown in ("nobody", str(max(made.values()) + 1), "0", "", f"0{made['martin']}"):
        with pytest.raises(matters.InvalidMatter):
            matters.find_matter(conn, unknown)

    def steps() -> int:
        return vm_steps(conn, lambda: matters.find_matter(conn, "martin"))

    few = steps()
    for n in range(200):
        mid = int(box.archive.write(matters.create_matter(f"z-{n:03}", "", "", "admin")))
        box.archive.write(matters.attach(mid, "admin", person=f"Personne {n}"))
    # vm_steps counts in thousands: reading 200 more matters and their persons is
    # thousands of steps, a look-up by key the same handful.
    assert steps() <= few, few
