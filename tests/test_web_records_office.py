"""Records-office pages over HTTP: attachments found by file name, roles, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from multidict import MultiDict
from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import audit_events
from strongroom.archive.record import parse_record, sign_record
from strongroom.box import Box
from strongroom.office.policies import (
    DEFAULT_SUBJECT,
    assign_policy,
    policy_by_preset,
    unassign_policy,
)
from strongroom.web.state import STATE
from support.box import upload_blob
from web_helpers import (
    ADMIN_PASSWORD,
    ARCHIVIST_PASSWORD,
    AUDITOR_PASSWORD,
    Client,
    another_browser,
    csrf_of,
    login,
    new_box,
    web_app,
)

OLD = 1_400_000_000_000  # 2014


@pytest.fixture
async def box(tmp_path: Path) -> AsyncIterator[Box]:
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Pixel")
    archive.write(
        writes.store_record(
            message(key, "Compte rendu d'audience", at=OLD, peer="M. Martin"),
            device_id,
            "maitre.durand",
        )
    )
    data = b"%PDF-1.4 conclusions"
    sha, _ = upload_blob(archive, data)
    # As the reference client sends it: an attachment record referring to itself.
    fields = {
        "v": 1,
        "kind": "attachment",
        "id": "a-1",
        "conv": "client-martin",
        "dir": "out",
        "from": "Maître Durand",
        "at": OLD,
        "ref": "a-1",
        "blob": {
            "sha256": sha,
            "size": len(data),
            "name": "conclusions-Martin.pdf",
            "mime": "application/pdf",
        },
    }
    raw, sig = sign_record(key, fields)
    archive.write(
        writes.store_record(
            parse_record(raw, sig, max_blob_size=1 << 20), device_id, "maitre.durand"
        )
    )
    yield box
    await box.stop()


@pytest.fixture
async def client(box: Box, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(web_app(box), headers={"Accept-Language": "en"})


async def test_an_attachment_sent_on_its_own_is_found_by_name_and_filter(client: Client) -> None:
    await login(client, "admin", ADMIN_PASSWORD)
    html = await (await client.get("/archive", params={"q": "CONCLUSIONS"})).text()
    assert 'id="file-hits"' in html and "conclusions-Martin.pdf" in html
    assert "sent on its own" in html
    html = await (await client.get("/archive", params={"attachment": "yes"})).text()
    assert "conclusions-Martin.pdf" in html
    html = await (await client.get("/archive", params={"q": "audience"})).text()
    assert "conclusions-Martin.pdf" not in html
    # The conversation's own view lists it beside its messages.
    html = await (await client.get("/archive", params={"conversation": "1"})).text()
    assert "conclusions-Martin.pdf" in html and "Compte rendu d&#39;audience" in html


async def test_the_auditor_reads_the_office_but_decides_nothing(client: Client, box: Box) -> None:
    archive = box.require_archive()
    policy = policy_by_preset(archive.conn, "correspondance-generale")
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy.id, "admin"))
    await login(client, "auditeur", AUDITOR_PASSWORD)
    for path in ("/office", "/office/due", "/office/certificates", "/office/matters"):
        response = await client.get(path)
        assert response.status == 200, path
    due = await (await client.get("/office/due")).text()
    assert 'name="record"' not in due and 'data-state="destroy"' in due
    response = await client.post(
        "/office/due",
        data={"record": "1", "decision": "approve", "reason": "x", "csrf_token": csrf_of(due)},
        allow_redirects=False,
    )
    assert response.status == 403
    assert archive.conn.execute("SELECT count(*) FROM destruction_certificates").fetchone()[0] == 0


async def test_a_decision_without_a_reason_is_refused_and_nothing_is_destroyed(
    client: Client, box: Box
) -> None:
    archive = box.require_archive()
    policy = policy_by_preset(archive.conn, "correspondance-generale")
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy.id, "admin"))
    await login(client, "admin", ADMIN_PASSWORD)
    due = await (await client.get("/office/due")).text()
    response = await client.post(
        "/office/due",
        data={"record": "1", "decision": "approve", "reason": " ", "csrf_token": csrf_of(due)},
    )
    assert "Choose records and give a reason." in await response.text()
    assert (
        archive.conn.execute(
            "SELECT count(*) FROM records WHERE destroyed_at IS NOT NULL"
        ).fetchone()[0]
        == 0
    )


async def test_keeping_a_record_number_that_names_no_record_is_no_server_error(
    client: Client, box: Box
) -> None:
    """A forged or stale form naming record 99999: the foreign key failed the whole
    write (a 500 page); it is left out, and no audit event names it."""
    await login(client, "admin", ADMIN_PASSWORD)
    due = await (await client.get("/office/due")).text()
    form = {"record": "99999", "decision": "reject", "reason": "x", "csrf_token": csrf_of(due)}
    response = await client.post("/office/due", data=form, allow_redirects=False)
    assert response.status == 303
    archive = box.require_archive()
    assert archive.conn.execute("SELECT count(*) FROM retention_keeps").fetchone()[0] == 0
    assert "retention.reject" not in {e.action for e in audit_events(archive.conn)}
    page = await (await client.get(response.headers["Location"])).text()
    assert NONE_DUE in page and "Decision recorded." not in page


NONE_DUE = "None of the records chosen is due any more (the page was out of date)"
NONE_TO_DESTROY = "None of the records chosen can be destroyed now"
SOME_NOT_DUE = "Some of the records chosen are no longer due for this decision"


def _decisions(box: Box) -> tuple[int, int, int, list[tuple[str, str]]]:
    """What a decision writes: keeps, approvals, certificates, and its audit events."""
    conn = box.require_archive().conn
    counts = [
        conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        for table in ("retention_keeps", "retention_approvals", "destruction_certificates")
    ]
    events = [
        (e.action, e.details)
        for e in audit_events(conn)
        if e.action in ("retention.reject", "retention.extend", "retention.approve")
    ]
    return counts[0], counts[1], counts[2], events


async def test_a_stale_due_page_decides_nothing_for_records_no_longer_due_and_says_so(
    client: Client, box: Box
) -> None:
    """The office manager opens Due, a colleague removes the policy meanwhile, then she
    rejects, extends or approves from her page: the records are no longer due, so nothing
    is written and the page says why (it said "Decision recorded." and wrote a keep and
    an audit event; the CLI already refused)."""
    archive = box.require_archive()
    policy = policy_by_preset(archive.conn, "correspondance-generale")
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy.id, "admin"))
    await login(client, "admin", ADMIN_PASSWORD)
    stale = await (await client.get("/office/due")).text()
    assert 'name="record" value="1"' in stale and 'name="record" value="2"' in stale
    archive.write(unassign_policy("default", DEFAULT_SUBJECT, "archiviste"))

    token = csrf_of(stale)
    for decision, refusal in (
        ("reject", NONE_DUE),
        ("extend", NONE_DUE),
        ("approve", NONE_TO_DESTROY),
    ):
        form = MultiDict(record="1", decision=decision, until="2099-01-01")
        form.extend(record="2", reason="dossier en cours", csrf_token=token)
        response = await client.post("/office/due", data=form)
        page = await response.text()
        assert response.url.path == "/office/due", decision  # no destruction job started
        assert refusal in page and "Decision recorded." not in page, decision
        assert _decisions(box) == (0, 0, 0, []), decision


async def test_a_decision_naming_due_and_no_longer_due_records_acts_on_the_due_ones_only(
    client: Client, box: Box
) -> None:
    """Record 3 (written today) is not due: an extension naming it with record 1 keeps
    record 1 only, and a French page says both what was recorded and what was not."""
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="maitre.durand", name="Fairphone")
    today = message(key, "Relance", at=int(time.time() * 1000), peer="M. Martin")
    archive.write(writes.store_record(today, device_id, "maitre.durand"))
    policy = policy_by_preset(archive.conn, "correspondance-generale")
    archive.write(assign_policy("default", DEFAULT_SUBJECT, policy.id, "admin"))
    french = await another_browser(client)  # no Accept-Language: the box's French
    try:
        await login(french, "archiviste", ARCHIVIST_PASSWORD)
        due = await (await french.get("/office/due")).text()
        assert 'value="3"' not in due
        form = MultiDict(record="1", decision="extend", until="2099-01-01")
        form.extend(record="3", reason="procédure en appel", csrf_token=csrf_of(due))
        page = await (await french.post("/office/due", data=form)).text()
        assert "Décision enregistrée." in page
        assert "Certains des enregistrements choisis ne sont plus échus" in page
        kept = archive.conn.execute("SELECT record_id FROM retention_keeps").fetchall()
        assert [r[0] for r in kept] == [1]
        ((action, details),) = _decisions(box)[3]
        assert action == "retention.extend" and json.loads(details)["records"] == [1]

        # Approving record 3 alone: refused in French, no job, nothing written.
        due = await (await french.get("/office/due")).text()
        form = MultiDict(record="3", decision="approve", reason="fin de conservation")
        form["csrf_token"] = csrf_of(due)
        response = await french.post("/office/due", data=form)
        assert response.url.path == "/office/due"
        assert "Aucun des enregistrements choisis ne peut être détruit" in await response.text()
        assert _decisions(box)[1:3] == (0, 0)

        # Approving records 2 and 3: the job destroys record 2 only, its page says why not 3.
        form["record"] = "2"
        form.add("record", "3")
        form["csrf_token"] = csrf_of(await (await french.get("/office/due")).text())
        response = await french.post("/office/due", data=form, allow_redirects=False)
        job_path = response.headers["Location"]
        await french.app[STATE].jobs.wait(job_path.rsplit("/", 1)[1])
        page = await (await french.get(job_path)).text()
        assert "Certains des enregistrements choisis ne sont plus échus" in page
        destroyed = archive.conn.execute("SELECT id FROM records WHERE destroyed_at IS NOT NULL")
        assert [r[0] for r in destroyed] == [2]
    finally:
        await french.session.close()


async def test_the_office_manager_edits_retires_and_sets_the_default_policy(
    client: Client, box: Box
) -> None:
    archive = box.require_archive()
    await login(client, "admin", ADMIN_PASSWORD)

    async def post(path: str, data: dict[str, str]) -> str:
        page = await (await client.get("/office")).text()
        response = await client.post(path, data={**data, "csrf_token": csrf_of(page)})
        return await response.text()

    fields = {"name": "Courrier", "duration": "2", "unit": "years"}
    fields |= {"start_event": "record_date", "action": "destroy", "legal_basis": "usage"}
    assert "Policy created." in await post("/office/policies", fields)
    (pid,) = archive.conn.execute(
        "SELECT id FROM retention_policies WHERE name = 'Courrier'"
    ).fetchone()
    html = await post(f"/office/policies/{pid}", {**fields, "duration": "3", "action": "review"})
    assert "Policy saved." in html
    assert archive.conn.execute(
        "SELECT duration_value, action FROM retention_policies WHERE id = ?", (pid,)
    ).fetchone() == (3, "review")
    html = await post("/office/assign", {"scope": "default", "policy": str(pid)})
    assert "Policy assigned." in html and 'id="default-policy"' in html
    assert "Courrier" in html.split('id="default-policy"')[1].split("</p>")[0]
    # A bad duration is refused with a message, nothing changes.
    html = await post(f"/office/policies/{pid}", {**fields, "duration": "zéro"})
    assert "The policy is incomplete or its name is taken." in html
    assert "Setting saved." in await post("/office/four-eyes", {"enabled": "1"})
    html = await post(f"/office/policies/{pid}", {"op": "retire"})
    assert "Policy retired." in html
    html = await post("/office/assign", {"scope": "contact", "person": "x", "policy": str(pid)})
    assert "Choose what the policy applies to, and a policy." in html
    actions = {r[0] for r in archive.conn.execute("SELECT action FROM audit_events")}
    assert {"retention.policy.create", "retention.policy.update", "retention.assign"} <= actions
    assert {"retention.four_eyes", "retention.policy.retire"} <= actions


async def test_the_office_manager_removes_an_assignment_and_the_record_is_no_longer_due(
    client: Client, box: Box
) -> None:
    archive = box.require_archive()
    pid = policy_by_preset(archive.conn, "correspondance-generale").id
    await login(client, "admin", ADMIN_PASSWORD)
    page = await (await client.get("/office")).text()
    assign = {"scope": "conversation", "conversation": "1", "policy": str(pid)}
    response = await client.post("/office/assign", data={**assign, "csrf_token": csrf_of(page)})
    assert "Policy assigned." in await response.text()
    # The 2014 message is due under the policy now governing its conversation.
    assert 'data-state="destroy"' in await (await client.get("/office/due")).text()

    page = await (await client.get("/office")).text()
    row = page.split('id="assignments"')[1].split("</table>")[0]
    assert 'action="/office/unassign"' in row and ">Remove</button>" in row
    removal = {"scope": "conversation", "subject": "1", "csrf_token": csrf_of(page)}
    response = await client.post("/office/unassign", data=removal)
    html = await response.text()
    assert "Assignment removed." in html and 'id="assignments"' not in html
    # Nothing governs the conversation any more: nothing is due.
    assert "data-state=" not in await (await client.get("/office/due")).text()
    audit = await (await client.get("/audit", params={"action": "retention.unassign"})).text()
    assert "retention.unassign" in audit and "admin" in audit
    (target,) = archive.conn.execute(
        "SELECT target FROM audit_events WHERE action = 'retention.unassign'"
    ).fetchone()
    assert target == "conversation:1"

    # Removing it again says so; nothing else is touched.
    page = await (await client.get("/office")).text()
    removal["csrf_token"] = csrf_of(page)
    response = await client.post("/office/unassign", data=removal)
    assert "This assignment no longer exists." in await response.text()

    # The auditor sees the assignment but cannot remove it.
    archive.write(assign_policy("conversation", "1", pid, "admin"))
    auditor = await another_browser(client)
    try:
        await login(auditor, "auditeur", AUDITOR_PASSWORD)
        page = await (await auditor.get("/office")).text()
        assert 'id="assignments"' in page and "/office/unassign" not in page
        response = await auditor.post(
            "/office/unassign",
            data={"scope": "conversation", "subject": "1", "csrf_token": csrf_of(page)},
            allow_redirects=False,
        )
        assert response.status == 403
    finally:
        await auditor.session.close()  # its own cookies only: the server stays up
    assert archive.conn.execute("SELECT count(*) FROM retention_assignments").fetchone()[0] == 1

    # The archivist, who may assign, may remove; the default policy stays the admin's.
    archive.write(assign_policy("default", DEFAULT_SUBJECT, pid, "admin"))
    archivist = await another_browser(client)
    try:
        await login(archivist, "archiviste", ARCHIVIST_PASSWORD)
        page = await (await archivist.get("/office")).text()
        refused = await archivist.post(
            "/office/unassign",
            data={"scope": "default", "subject": DEFAULT_SUBJECT, "csrf_token": csrf_of(page)},
            allow_redirects=False,
        )
        assert refused.status == 403
        response = await archivist.post(
            "/office/unassign",
            data={"scope": "conversation", "subject": "1", "csrf_token": csrf_of(page)},
        )
        assert "Affectation retirée." in await response.text()  # a French browser
    finally:
        await archivist.session.close()
    left = archive.conn.execute("SELECT scope FROM retention_assignments").fetchall()
    assert [tuple(r) for r in left] == [("default",)]
