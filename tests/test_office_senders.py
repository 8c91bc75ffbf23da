"""`conversation_senders` (who wrote in each conversation) decides which records a
hold on a person protects: verify compares it with `messages`, and retention
re-reads `messages` before it destroys anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from strongroom.archive.verify import verify_open_archive
from strongroom.office import retention
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from support.records import signed_message
from test_office_support import DAY_MS, T0, Box, conversation_id, new_box, new_phone, store


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = new_box(tmp_path)
    yield b
    b.close()


def _from(box: Box, phone: tuple[int, SigningKey], text: str, sender: str, conv: str) -> int:
    """A message written by `sender` (neither the owner nor the other party)."""
    record = signed_message(
        phone[1], text, conv=conv, direction="in", sender=sender, peer="M. Martin", at=T0
    )
    store(box, phone[1], phone[0], "maitre.durand", record)
    return int(box.reader_scalar("SELECT id FROM records WHERE record_id = ?", record.record_id))


def _body(box: Box, record: int) -> bytes | None:
    value = box.reader_scalar("SELECT body FROM records WHERE id = ?", record)
    return None if value is None else bytes(value)


@pytest.mark.parametrize("damage", ["deleted", "forged"])
def test_a_full_verify_names_conversation_senders_that_differ_from_the_messages(
    box: Box, damage: str
) -> None:
    phone = new_phone(box.archive)
    _from(box, phone, "témoignage", "Mme Dupont", "c-dupont")
    conv = conversation_id(box, "c-dupont")
    assert verify_open_archive(box.archive).ok
    if damage == "deleted":
        box.archive.conn.execute("DELETE FROM conversation_senders")
    else:
        box.archive.conn.execute(
            "INSERT INTO conversation_senders (conversation_id, sender) VALUES (?, 'M. Personne')",
            (conv,),
        )
    report = verify_open_archive(box.archive)
    expected = {
        "deleted": f"conversation {conv}: 1 sender(s) of its messages missing from"
        " conversation_senders",
        "forged": f"conversation {conv}: 1 sender(s) in conversation_senders with no message",
    }[damage]
    assert any(p.startswith(expected) for p in report.problems), report.problems


@pytest.mark.parametrize("run", ["retention-run", "review-approval"])
def test_retention_keeps_a_held_persons_records_when_conversation_senders_lost_them(
    box: Box, run: str
) -> None:
    phone = new_phone(box.archive)
    held = _from(box, phone, "témoignage", "Mme Dupont", "c-dupont")
    free = _from(box, phone, "autre affaire", "M. Bernard", "c-bernard")
    action = "destroy" if run == "retention-run" else "review"
    spec = PolicySpec("test 30 j", Duration(30, "days"), "record_date", action)
    policy = int(box.archive.write(create_policy(spec, "admin")))
    box.archive.write(assign_policy("owner", "maitre.durand", policy, "admin"))
    box.archive.write(place_hold(HoldSpec("person", "plainte", person="mme dupont"), "admin"))
    now = T0 + 31 * DAY_MS
    assert [h.item.record for h in retention.find_due(box.archive.conn, now).held] == [held]
    # The hold's only link to the conversation is its sender, and that row is gone.
    box.archive.conn.execute("DELETE FROM conversation_senders")
    assert retention.find_due(box.archive.conn, now).held == []
    if run == "retention-run":
        destroyed = retention.run(box.archive, now).destruction.destroyed
    else:
        done = retention.approve_review(box.archive, [held, free], "dr.martin", now)
        destroyed = done.destroyed
        assert done.skipped == (held,)
    assert destroyed == 1
    assert _body(box, held) is not None, "a held person's record was destroyed"
    assert _body(box, free) is None


@pytest.mark.parametrize("kind", ["person", "matter"])
def test_an_export_misses_none_of_a_persons_conversations_when_conversation_senders_lost_them(
    box: Box, tmp_path: Path, kind: str
) -> None:
    import zipfile

    from strongroom.office import matters
    from strongroom.office.export import ExportRequest, ExportScope, export_bundle

    phone = new_phone(box.archive)
    # Mme Dupont's only link to c-dupont is as the sender of its message.
    _from(box, phone, "témoignage de Mme Dupont", "Mme Dupont", "c-dupont")
    _from(box, phone, "autre affaire", "M. Bernard", "c-bernard")
    matter = box.archive.write(matters.create_matter("2024-9", "Mme Dupont", "", "admin"))
    box.archive.write(matters.attach(matter, "admin", person="Mme Dupont"))
    scope = (
        ExportScope("person", person="mme dupont")
        if kind == "person"
        else ExportScope("matter", matter_id=int(matter))
    )
    # Someone with the key removes the row that names her (only a full verify says so).
    box.archive.conn.execute("DELETE FROM conversation_senders WHERE sender = 'Mme Dupont'")
    out = tmp_path / "export.zip"
    export_bundle(box.archive, ExportRequest(scope, "me.durand", "Mme Dupont", "accès"), out)
    with zipfile.ZipFile(out) as bundle:
        texts = " ".join(
            bundle.read(name).decode("utf-8", "replace")
            for name in bundle.namelist()
            if name.endswith((".json", ".txt"))
        )
    assert "témoignage de Mme Dupont" in texts
    assert "autre affaire" not in texts
