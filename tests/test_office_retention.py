"""Retention policies and legal holds with an injectable clock: due, held, reviewed, destroyed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strongroom.archive.verify import verify_archive
from strongroom.office import matters, retention
from strongroom.office.certificates import list_certificates, load_certificate
from strongroom.office.errors import InvalidHold, InvalidPolicy, UnknownHold
from strongroom.office.holds import HoldSpec, lift_hold, list_holds, place_hold
from strongroom.office.policies import (
    PRESETS,
    Duration,
    PolicySpec,
    assign_policy,
    create_policy,
    delete_policy,
    list_policies,
    policy_by_preset,
    update_policy,
)
from test_office_support import DAY_MS, T0, YEAR_MS, Box, conversation_id, new_box, new_phone, say


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


def destroy_after(box: Box, days: int, action: str = "destroy", start: str = "record_date") -> int:
    spec = PolicySpec(f"test {days}d {action} {start}", Duration(days, "days"), start, action)
    return int(box.archive.write(create_policy(spec, "admin")))


def body(box: Box, record: int) -> bytes | None:
    value = box.reader_scalar("SELECT body FROM records WHERE id = ?", record)
    return None if value is None else bytes(value)


def test_french_presets_are_installed_and_match_the_code(box: Box) -> None:
    conn = box.archive.conn
    for key, spec in PRESETS.items():
        policy = policy_by_preset(conn, key)
        assert (policy.name, policy.duration, policy.start_event, policy.action) == (
            spec.name,
            spec.duration,
            spec.start_event,
            spec.action,
        )
        assert policy.legal_basis == spec.legal_basis
    medical = policy_by_preset(conn, "dossier-medical")
    assert medical.duration == Duration(20, "years")
    assert policy_by_preset(conn, "dossier-avocat").start_event == "matter_closed"


def test_presets_are_editable_and_edits_are_audited(box: Box) -> None:
    medical = policy_by_preset(box.archive.conn, "dossier-medical")
    spec = PolicySpec("Dossier médical (cabinet)", Duration(25, "years"), "last_activity", "review")
    box.archive.write(update_policy(medical.id, spec, "dr.admin"))
    assert policy_by_preset(box.archive.conn, "dossier-medical").duration == Duration(25, "years")
    actor, details = box.archive.conn.execute(
        "SELECT actor, details FROM audit_events WHERE action = 'retention.policy.update'"
    ).fetchone()
    assert actor == "dr.admin"
    assert json.loads(details)["before"]["duration"] == "20 years"


def test_calendar_durations() -> None:
    assert Duration(1, "years").after(ms(2024, 2, 29)) == ms(2025, 2, 28)
    assert Duration(1, "months").after(ms(2023, 1, 31)) == ms(2023, 2, 28)
    assert Duration(20, "years").after(ms(2004, 6, 1)) == ms(2024, 6, 1)
    assert Duration(30, "days").after(ms(2024, 1, 1)) == ms(2024, 1, 31)
    with pytest.raises(InvalidPolicy):
        Duration(0, "days")
    with pytest.raises(InvalidPolicy):
        Duration(3, "weeks")


def test_nothing_is_due_without_an_assignment(box: Box) -> None:
    phone = new_phone(box.archive)
    say(box, phone, "bonjour", at=T0 - 50 * YEAR_MS)
    assert retention.find_due(box.archive.conn, T0).empty


def test_record_date_policy_falls_due_exactly_at_the_end(box: Box) -> None:
    phone = new_phone(box.archive)
    old = say(box, phone, "ancien", at=T0)
    young = say(box, phone, "récent", at=T0 + 5 * DAY_MS)
    policy = destroy_after(box, 30)
    box.archive.write(assign_policy("conversation", str(conversation_id(box)), policy, "admin"))

    before = retention.find_due(box.archive.conn, T0 + 30 * DAY_MS - 1)
    assert before.to_destroy == []
    at_end = retention.find_due(box.archive.conn, T0 + 30 * DAY_MS)
    assert [i.record for i in at_end.to_destroy] == [old]
    later = retention.find_due(box.archive.conn, T0 + 40 * DAY_MS)
    assert {i.record for i in later.to_destroy} == {old, young}


def test_most_specific_assignment_wins(box: Box) -> None:
    phone = new_phone(box.archive)
    rec = say(box, phone, "texte", at=T0)
    short, long = destroy_after(box, 10), destroy_after(box, 1000)
    box.archive.write(assign_policy("owner", "maitre.durand", short, "admin"))
    assert retention.find_due(box.archive.conn, T0 + 11 * DAY_MS).to_destroy[0].record == rec
    box.archive.write(assign_policy("contact", "M. Martin", long, "admin"))
    assert retention.find_due(box.archive.conn, T0 + 11 * DAY_MS).empty
    box.archive.write(assign_policy("conversation", str(conversation_id(box)), short, "admin"))
    assert retention.find_due(box.archive.conn, T0 + 11 * DAY_MS).to_destroy[0].policy.id == short
    with pytest.raises(InvalidPolicy):
        box.archive.write(delete_policy(short, "admin"))


def test_matter_closed_policy_waits_for_closing(box: Box) -> None:
    phone = new_phone(box.archive)
    rec = say(box, phone, "dossier", at=T0)
    lawyer = policy_by_preset(box.archive.conn, "dossier-avocat")
    conv = conversation_id(box)
    box.archive.write(assign_policy("conversation", str(conv), lawyer.id, "admin"))
    assert retention.find_due(box.archive.conn, T0 + 30 * YEAR_MS).empty
    box.archive.write(matters.close_matter(conv, "admin", closed_at_ms=T0 + YEAR_MS))
    assert retention.find_due(box.archive.conn, T0 + 5 * YEAR_MS).empty
    due = retention.find_due(box.archive.conn, T0 + 7 * YEAR_MS)
    assert [i.record for i in due.to_review] == [rec]  # the preset asks for review
    assert due.to_destroy == []


def test_run_destroys_due_records_and_certifies(box: Box) -> None:
    phone = new_phone(box.archive)
    gone = say(box, phone, "secret médical périmé", at=T0)
    kept = say(box, phone, "autre dossier", conv="client-bernard", peer="Mme Bernard", at=T0)
    policy = destroy_after(box, 30)
    box.archive.write(assign_policy("contact", "M. Martin", policy, "admin"))
    size_before = box.archive.log.size

    result = retention.run(box.archive, T0 + 31 * DAY_MS, approver="dr.martin")

    assert result.destruction.destroyed == 1
    assert body(box, gone) is None and body(box, kept) is not None
    assert box.reader_scalar("SELECT destroyed_at FROM records WHERE id = ?", gone) is not None
    hits = box.reader_scalar("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'perime'")
    assert hits == 0
    report = verify_archive(box.archive.conn, box.archive.blobs, box.keys.signing_public)
    assert report.ok, report.problems
    assert report.destroyed == 1
    # The certificate is one more log leaf (an audit event), signed by the box.
    assert box.archive.log.size == size_before + 1
    (info,) = list_certificates(box.archive.conn)
    certificate, signature = load_certificate(box.archive.conn, info.id)
    box.keys.signing_key.verify_key.verify(certificate, signature)
    doc = json.loads(certificate)
    assert doc["approver"] == "dr.martin" and doc["count"] == 1
    assert doc["records"][0]["row_id"] == gone
    assert doc["policies"][0]["records"] == 1
    assert doc["tree_head"]["tree_size"] == size_before
    # A second run finds nothing more.
    assert retention.run(box.archive, T0 + 32 * DAY_MS).destruction.certificate is None


@pytest.mark.parametrize("scope", ["conversation", "person", "date_range"])
def test_hold_beats_policy_until_lifted(box: Box, scope: str) -> None:
    phone = new_phone(box.archive)
    rec = say(box, phone, "pièce du litige", at=T0)
    policy = destroy_after(box, 30)
    conv = conversation_id(box)
    box.archive.write(assign_policy("conversation", str(conv), policy, "admin"))
    spec = {
        "conversation": HoldSpec("conversation", "litige en cours", conversation_id=conv),
        "person": HoldSpec("person", "réquisition", person="  m. martin "),
        "date_range": HoldSpec("date_range", "audit fiscal", from_ms=T0 - DAY_MS, to_ms=T0),
    }[scope]
    hold = int(box.archive.write(place_hold(spec, "me.avocat")))

    result = retention.run(box.archive, T0 + 365 * DAY_MS)
    assert result.destruction.destroyed == 0
    assert [h.item.record for h in result.plan.held] == [rec]
    assert result.plan.held[0].hold_ids == (hold,)
    assert body(box, rec) is not None

    box.archive.write(lift_hold(hold, "me.avocat", "litige clos"))
    assert not list_holds(box.archive.conn, active_only=True)
    assert retention.run(box.archive, T0 + 366 * DAY_MS).destruction.destroyed == 1
    assert body(box, rec) is None
    actions = [a for (a,) in box.archive.conn.execute("SELECT action FROM audit_events")]
    assert "hold.place" in actions and "hold.lift" in actions


def test_date_range_hold_covers_only_its_range(box: Box) -> None:
    phone = new_phone(box.archive)
    inside = say(box, phone, "dans la période", at=T0)
    outside = say(box, phone, "hors période", at=T0 + 10 * DAY_MS)
    policy = destroy_after(box, 30)
    box.archive.write(assign_policy("owner", "maitre.durand", policy, "admin"))
    box.archive.write(place_hold(HoldSpec("date_range", "contrôle", from_ms=T0, to_ms=T0 + 1), "a"))
    retention.run(box.archive, T0 + 100 * DAY_MS)
    assert body(box, inside) is not None and body(box, outside) is None


def test_review_items_wait_for_approval_and_holds_still_win(box: Box) -> None:
    phone = new_phone(box.archive)
    first = say(box, phone, "à revoir 1", at=T0)
    second = say(box, phone, "à revoir 2", conv="c2", peer="Mme Durand", at=T0)
    policy = destroy_after(box, 30, action="review")
    box.archive.write(assign_policy("owner", "maitre.durand", policy, "admin"))
    now = T0 + 31 * DAY_MS

    result = retention.run(box.archive, now)
    assert result.destruction.destroyed == 0
    assert {i.record for i in result.plan.to_review} == {first, second}
    assert body(box, first) is not None

    # A hold placed after the reviewer looked still protects its records.
    box.archive.write(place_hold(HoldSpec("person", "plainte", person="Mme Durand"), "admin"))
    done = retention.approve_review(box.archive, [first, second], "dr.martin", now)
    assert done.destroyed == 1 and done.skipped == (second,)
    assert body(box, first) is None and body(box, second) is not None
    cert = json.loads(load_certificate(box.archive.conn, done.certificate.id)[0])  # type: ignore[union-attr]
    assert cert["trigger"] == "review-approval" and cert["approver"] == "dr.martin"


def test_keep_after_review_postpones(box: Box) -> None:
    phone = new_phone(box.archive)
    rec = say(box, phone, "à garder", at=T0)
    policy = destroy_after(box, 30, action="review")
    box.archive.write(assign_policy("owner", "maitre.durand", policy, "admin"))
    until = T0 + 400 * DAY_MS
    box.archive.write(retention.keep_after_review([rec], "dr.martin", until, "suivi en cours"))
    plan = retention.find_due(box.archive.conn, T0 + 100 * DAY_MS)
    assert [i.record for i in plan.kept] == [rec] and plan.to_review == []
    assert [i.record for i in retention.find_due(box.archive.conn, until + 1).to_review] == [rec]


def test_invalid_holds_and_policies_are_refused(box: Box) -> None:
    with pytest.raises(InvalidHold):
        HoldSpec("person", "  ", person="x")
    with pytest.raises(InvalidHold):
        HoldSpec("date_range", "r", from_ms=2, to_ms=1)
    with pytest.raises(UnknownHold):
        box.archive.write(lift_hold(999, "a", "r"))
    with pytest.raises(InvalidPolicy):
        PolicySpec("x", Duration(1, "days"), "someday", "destroy")
    with pytest.raises(InvalidPolicy):
        retention.approve_review(box.archive, [1], " ", T0)
    names = [p.name for p in list_policies(box.archive.conn)]
    assert "Correspondance générale" in names
