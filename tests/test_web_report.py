"""The GDPR art. 30 register, as an auditor reads it from the web UI."""

from __future__ import annotations

from pathlib import Path

from pytest_aiohttp import AiohttpClient

from archive_helpers import message, new_phone
from strongroom.archive import writes
from strongroom.archive.audit_reads import audit_events
from strongroom.web.users import create_user
from support.pdf import pdf_words
from web_helpers import ADMIN_PASSWORD, CHEAP_HASHER, login, new_box, web_app


async def test_an_auditor_reads_the_register_in_html_and_pdf(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    box = new_box(tmp_path / "data")
    archive = box.require_archive()
    device_id, key = new_phone(archive, owner="dr.martin", name="iPhone du Dr Martin")
    archive.write_batch(
        [
            writes.store_record(message(key, f"Compte rendu {n}"), device_id, "dr.martin")
            for n in range(7)
        ]
    )
    create_user(box, "controle", ADMIN_PASSWORD, "auditor", hasher=CHEAP_HASHER)
    client = await aiohttp_client(web_app(box))
    anonymous = await client.get("/report", allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"] == "/login?next=/report"
    await login(client, "controle", ADMIN_PASSWORD)

    page = await client.get("/report")
    assert page.status == 200
    html = await page.text()
    assert "RGPD art. 30" in html
    assert "Intègre / intact" in html  # the integrity line, checked now
    assert "iPhone du Dr Martin" in html and "dr.martin" in html  # the device and its holder

    pdf = await client.get("/report.pdf")
    assert pdf.status == 200
    body = await pdf.read()
    text = pdf_words(body)  # the same register, not just any PDF
    assert "RGPD art. 30" in text and "Intègre / intact" in text
    assert "Contenu des messages / message content — 7 —" in text
    assert "iPhone du Dr Martin (dr.martin" in text
    conn = archive.reader()
    views = audit_events(conn, action="report.view")
    conn.close()
    assert {v.actor for v in views} == {"controle"} and len(views) == 2
    await box.stop()
