"""Who a person hold protects, which policy wins and why, matters, the due queue's decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive_helpers import message
from strongroom.office import matters, retention, review
from strongroom.office.certificates import list_certificates, load_certificate
from strongroom.office.errors import InvalidPolicy
from strongroom.office.facts import load_facts
from strongroom.office.holds import HoldSpec, hold_reach, list_holds, place_hold
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    Duration,
    PolicySpec,
    assign_policy,
    create_policy,
    policy_by_preset,
    retire_policy,
)
from strongroom.office.resolve import Resolver
from test_office_support import DAY_MS, T0, YEAR_MS, Box, conversation_id, new_box, new_phone, store


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


def days(box: Box, n: int, action: str = "destroy", start: str = "record_date") -> int:
    spec = PolicySpec(f"{n} days {action} {start}", Duration(n, "days"), start, action)
    return int(box.archive.write(create_policy(spec, "admin")))


def test_a_person_hold_protects_every_conversation_the_person_is_in(box: Box) -> None:
    durand = new_phone(box.archive, "maitre.durand")
    martin = new_phone(box.archive, "dr.martin", "Fairphone")
    # Other party named by the record, owner, and a bare sender (an older phone: no peer).
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
    # No peer, no message from him, but Durand's phone left him mail: when in doubt, protect.
    push(box, durand, "mail", "c-mail", "maitre.durand", peer="")
    box.archive.conn.execute(
        "INSERT INTO mail (mail_id, sender_device, recipient_owner, payload, created_at)"
        " VALUES (?, ?, 'dr.martin', x'00', 0)",
        (b"m" * 16, durand[0]),
    )
    push(box, durand, "other", "c-other", "maitre.durand", peer="M. Petit")
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, days(box, 1), "admin"))
    box.archive.write(place_hold(HoldSpec("person", "plainte", person="dr.martin"), "admin"))
    plan = retention.find_due(box.archive.conn, T0 + 2 * DAY_MS)
    held = {
        box.reader_scalar("SELECT ref FROM conversations WHERE id = ?", h.item.conversation_id)
        for h in plan.held
    }
    assert held == {"c-named", "c-own", "c-sender", "c-mail"}
    assert [i.conversation_id for i in plan.to_destroy] == [conversation_id(box, "c-other")]
    (hold,) = list_holds(box.archive.conn)
    reach = hold_reach(box.archive.conn, [hold])[hold.id]
    assert (reach.conversations, reach.records) == (4, 4)


def test_the_most_specific_assignment_wins_and_ties_keep_longest(box: Box) -> None:
    phone = new_phone(box.archive)
    push(box, phone, "x", "c1", "maitre.durand", peer="M. Martin")
    conv = conversation_id(box, "c1")
    short, long_ = days(box, 10), days(box, 400, "review")
    a = int(box.archive.write(matters.create_matter("A-1", "Martin", "Durand", "admin")))
    b = int(box.archive.write(matters.create_matter("B-2", "Martin", "Durand", "admin")))
    box.archive.write(matters.attach(a, "admin", conversation_id=conv))
    box.archive.write(matters.attach(b, "admin", person="m. martin"))  # by person
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, short, "admin"))
    box.archive.write(assign_policy("contact", "M. MARTIN", short, "admin"))
    box.archive.write(assign_policy("matter", str(a), short, "admin"))
    box.archive.write(assign_policy("matter", str(b), long_, "dpo"))
    facts = load_facts(box.archive.conn)[conv]
    assert [m.ref for m in facts.matters] == ["A-1", "B-2"]
    governing = Resolver.load(box.archive.conn).governing(facts, T0)
    assert governing is not None
    why = governing.why()
    assert (why["scope"], why["subject"], why["assigned_by"]) == ("matter", str(b), "dpo")
    assert why["tie_beaten"] == [
        {"scope": "matter", "subject": str(a), "policy": "10 days destroy record_date"}
    ]
    box.archive.write(assign_policy("conversation", str(conv), short, "admin"))
    governing = Resolver.load(box.archive.conn).governing(facts, T0)
    assert governing is not None and governing.assignment.scope == "conversation"


def test_end_of_matter_counts_from_the_last_matter_closed_and_reopening_stops_it(box: Box) -> None:
    phone = new_phone(box.archive)
    rec = push(box, phone, "x", "c1", "maitre.durand", peer="M. Martin")
    m = int(box.archive.write(matters.create_matter("D-9", "", "", "admin")))
    box.archive.write(matters.attach(m, "admin", conversation_id=conversation_id(box, "c1")))
    box.archive.write(
        assign_policy("matter", str(m), days(box, 30, "review", "matter_closed"), "a")
    )
    assert retention.find_due(box.archive.conn, T0 + 10 * YEAR_MS).empty  # still open
    box.archive.write(matters.set_matter_closed(m, "admin", closed=True, closed_at_ms=T0 + DAY_MS))
    assert [i.record for i in retention.find_due(box.archive.conn, T0 + 31 * DAY_MS).to_review] == [
        rec
    ]
    box.archive.write(matters.set_matter_closed(m, "admin", closed=False))
    assert retention.find_due(box.archive.conn, T0 + 31 * DAY_MS).empty
    with pytest.raises(matters.InvalidMatter):
        box.archive.write(matters.create_matter("D-9", "", "", "admin"))


def test_four_eyes_destroys_only_after_two_different_approvers(box: Box) -> None:
    phone = new_phone(box.archive)
    rec = push(box, phone, "secret zqxw", "c1", "maitre.durand", peer="M. Martin")
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, days(box, 1, "review"), "admin"))
    box.archive.write(review.set_two_approvals(True, "admin"))
    now = T0 + 2 * DAY_MS
    first = review.approve(box.archive, [rec], "alice", "délai écoulé", now)
    assert (first.approved, first.waiting, first.destruction) == (1, 1, None)
    again = review.approve(box.archive, [rec], "alice", "encore moi", now)
    assert again.destruction is None
    assert box.reader_scalar("SELECT body IS NOT NULL FROM records WHERE id = ?", rec) == 1
    second = review.approve(box.archive, [rec], "bob", "d'accord", now)
    assert second.destruction is not None and second.destruction.destroyed == 1
    (cert,) = list_certificates(box.archive.conn)
    document = json.loads(load_certificate(box.archive.conn, cert.id)[0])
    assert document["approver"] == "alice + bob"
    assert document["records"][0]["assignment"] == "default:*"


def test_reject_and_extend_keep_with_a_reason_and_are_audited(box: Box) -> None:
    phone = new_phone(box.archive)
    one = push(box, phone, "a", "c1", "maitre.durand", peer="M. Martin")
    two = push(box, phone, "b", "c1", "maitre.durand", peer="M. Martin")
    box.archive.write(assign_policy("default", DEFAULT_SUBJECT, days(box, 1, "review"), "admin"))
    now = T0 + 2 * DAY_MS
    box.archive.write(review.reject([one], "alice", "dossier sensible", now))
    box.archive.write(review.extend([two], "bob", now + 10 * DAY_MS, "expertise", now))
    queue = review.due_queue(box.archive.conn, now)
    assert {(q.item.record, q.state) for q in queue.items} == {(one, "kept"), (two, "kept")}
    later = review.due_queue(box.archive.conn, now + 11 * DAY_MS)
    assert {(q.item.record, q.state) for q in later.items} == {(one, "kept"), (two, "review")}
    assert review.due_queue(box.archive.conn, now + YEAR_MS + DAY_MS).actionable
    actions = [r[0] for r in box.archive.conn.execute("SELECT action FROM audit_events")]
    assert "retention.reject" in actions and "retention.extend" in actions
    with pytest.raises(InvalidPolicy):
        review.reject([one], "alice", "  ", now)


def test_a_retired_policy_cannot_be_assigned_again(box: Box) -> None:
    policy = policy_by_preset(box.archive.conn, "pieces-comptables")
    box.archive.write(retire_policy(policy.id, "admin"))
    with pytest.raises(InvalidPolicy, match="retired"):
        box.archive.write(assign_policy("owner", "maitre.durand", policy.id, "admin"))


def test_a_person_attached_to_a_matter_keeps_their_spelling_and_detaches_by_any(box: Box) -> None:
    phone = new_phone(box.archive)
    push(box, phone, "x", "c1", "maitre.durand", peer="Dr. Martin")
    m = int(box.archive.write(matters.create_matter("D-1", "", "", "admin")))
    box.archive.write(matters.attach(m, "admin", person="Dr.  Martin"))
    box.archive.write(matters.attach(m, "admin", person="dr martin"))  # the same person
    (matter,) = matters.list_matters(box.archive.conn)
    assert matter.persons == ("Dr. Martin",)
    assert [x.ref for x in load_facts(box.archive.conn)[conversation_id(box, "c1")].matters] == [
        "D-1"
    ]
    box.archive.write(matters.attach(m, "admin", person="DR MARTIN", detach=True))
    assert matters.list_matters(box.archive.conn)[0].persons == ()


def test_a_person_export_takes_every_conversation_a_person_hold_protects(box: Box) -> None:
    from strongroom.office.export_scope import ExportScope, select_records

    durand = new_phone(box.archive, "maitre.durand")
    martin = new_phone(box.archive, "dr.martin", "Fairphone")
    push(box, durand, "named", "c-named", "maitre.durand", peer="Dr. Martin")
    push(box, martin, "own", "c-own", "dr.martin", peer="maitre.durand")
    push(
        box, durand, "sender", "c-sender", "maitre.durand", direction="in", **{"from": "DR MARTIN"}
    )
    push(box, durand, "other", "c-other", "maitre.durand", peer="M. Petit")
    rows = list(select_records(box.archive.conn, ExportScope("person", person="dr.martin")))
    assert sorted(str(r[13]) for r in rows) == ["c-named", "c-own", "c-sender"]
