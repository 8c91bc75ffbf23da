"""A sealed export a reader understands: who wrote to whom, in which direction, on which
phone, at what time (the practice's zone and UTC), attachments linked under their own
names, a marked gap where retention destroyed a record; the PDF says what the HTML says
(read back with pdftotext)."""

from __future__ import annotations

import html
import re
import subprocess
import urllib.parse
import zipfile
from pathlib import Path

from archive_helpers import message
from strongroom.archive import writes
from strongroom.office import retention
from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from test_office_support import DAY_MS, T0, Box, attach, conversation_id, new_box, new_phone, say


def build(tmp_path: Path) -> Box:
    box = new_box(tmp_path)
    phone = new_phone(box.archive, owner="maitre.durand", name="Pixel de Maître Durand")
    say(box, phone, "Premier message, détruit ensuite", at=T0)
    say(box, phone, "Bonjour M. Martin, voici l'expertise.", at=T0 + 2 * DAY_MS)
    reply = message(phone[1], "Merci Maître, bien reçu.", direction="in", at=T0 + 3 * DAY_MS,
                    peer="M. Martin")  # fmt: skip
    box.archive.write(writes.store_record(reply, phone[0], "maitre.durand"))
    attach(box, phone, b"%PDF-1.4 expertise", "Expertise médicale (1).pdf", at=T0 + 4 * DAY_MS)
    # Retention destroys the first message only (due one day after its date).
    policy = box.archive.write(
        create_policy(PolicySpec("court", Duration(1, "days"), "record_date", "destroy"), "a")
    )
    box.archive.write(assign_policy("contact", "M. Martin", int(policy), "admin"))
    assert retention.run(box.archive, T0 + DAY_MS + DAY_MS // 2).destruction.destroyed == 1
    return box


def contents(bundle: Path) -> tuple[str, str, list[str]]:
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        page = zf.read(next(n for n in names if n.endswith("/records.html"))).decode()
        pdf = zf.read(next(n for n in names if n.endswith("/records.pdf")))
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    return page, " ".join(text.split()), [n.split("/", 1)[1] for n in names]


def test_the_bundle_tells_who_wrote_to_whom_when_and_on_which_phone(tmp_path: Path) -> None:
    box = build(tmp_path)
    try:
        scope = ExportScope("conversation", conversation_id=conversation_id(box))
        request = ExportRequest(scope, "me.durand", "Tribunal judiciaire", "RG 24/1")
        out = export_bundle(box.archive, request, tmp_path / "e.zip").path
        assert out is not None
        page, pdf, members = contents(out)
    finally:
        box.close()
    text = html.unescape(page)
    title = "Export Strongroom — Conversation maitre.durand ↔ M. Martin"
    for wanted in (
        title,
        "Maître Durand → M. Martin · envoyé / sent",
        "M. Martin → maitre.durand · reçu / received",
        "Appareil / recording device : Pixel de Maître Durand (maitre.durand)",
        # T0 + 2 days = 2020-09-15 12:26:40 UTC, 14:26:40 in Paris (summer time)
        "Heure du téléphone / phone time : 15/09/2020 14:26:40 (Europe/Paris)"
        " = 2020-09-15 12:26:40 UTC",
        "Reçu par le boîtier / box time :",
        "[détruit / destroyed]",
        "voir son certificat de destruction",
    ):
        assert wanted in text, wanted
        assert wanted in pdf, wanted
    assert "conversation:" not in text and "conversation:" not in pdf
    # The attachment is in the bundle under its own name, and the page links to it.
    (attachment,) = [m for m in members if m.startswith("attachments/")]
    assert attachment.endswith("-Expertise médicale (1).pdf")
    assert f'href="{html.escape(urllib.parse.quote(attachment))}"' in page
    # The PDF says what the HTML says: every heading and every fact line.
    lines = re.findall(r"<strong>(.*?)</strong>|<div>(.*?)</div>", page)
    told = [html.unescape(a or b) for a, b in lines]
    assert len(told) >= 4 * 3
    for line in told:
        assert " ".join(line.split()) in pdf, line


def test_the_time_zone_is_the_practices(tmp_path: Path) -> None:
    box = build(tmp_path)
    try:
        scope = ExportScope("conversation", conversation_id=conversation_id(box))
        request = ExportRequest(scope, "me.durand", "Court", "case")
        out = export_bundle(
            box.archive, request, tmp_path / "ny.zip", time_zone="America/New_York"
        ).path
        assert out is not None
        page, pdf, _ = contents(out)
    finally:
        box.close()
    wanted = "15/09/2020 08:26:40 (America/New_York) = 2020-09-15 12:26:40 UTC"
    assert wanted in html.unescape(page) and wanted in pdf
