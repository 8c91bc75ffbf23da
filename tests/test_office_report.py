"""The GDPR art. 30 register is built from live data, in HTML and PDF."""

from __future__ import annotations

import time
from pathlib import Path

from strongroom.office import backup, report, retention
from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.holds import HoldSpec, place_hold
from strongroom.office.policies import Duration, PolicySpec, assign_policy, create_policy
from support.pdf import pdf_words
from test_office_support import DAY_MS, T0, attach, new_box, new_phone, say


def test_register_reflects_the_box(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive, owner="dr.martin", name="<script>Pixel</script>")
        say(box, phone, "consultation", peer="Mme Patiente", conv="p1", owner="dr.martin")
        attach(box, phone, b"radio", "radio.png", peer="Mme Patiente", conv="p1", owner="dr.martin")
        say(box, phone, "ancien", peer="M. Ancien", conv="p2", owner="dr.martin")
        conn = box.archive.conn
        conn.execute(
            "INSERT INTO users (username, role, password_hash, created_at)"
            " VALUES ('secretariat', 'admin', x'00', 0)"
        )
        policy = int(
            box.archive.write(
                create_policy(
                    PolicySpec("Courte", Duration(1, "days"), "record_date", "destroy"), "a"
                )
            )
        )
        box.archive.write(assign_policy("contact", "M. Ancien", policy, "secretariat"))
        box.archive.write(
            place_hold(
                HoldSpec("person", "contentieux ordinal", person="Mme Patiente"), "secretariat"
            )
        )
        retention.run(box.archive, T0 + 2 * DAY_MS, approver="dr.martin")
        scope = ExportScope("person", person="Mme Patiente")
        export_bundle(
            box.archive,
            ExportRequest(scope, "dr.martin", "Mme Patiente", "droit d'accès"),
            tmp_path / "e.zip",
        )
        (tmp_path / "usb").mkdir()
        backup.run(box.archive, tmp_path / "usb", box.keys.backup_key)
        integrity = report.check_integrity(box.archive, T0 + 3 * DAY_MS)
        assert integrity.ok

        register = report.build_register(
            conn,
            now_ms=T0 + 3 * DAY_MS,
            data_dir=box.data_dir,
            box_public_key=box.keys.signing_public,
            integrity=integrity,
        )
        counts = {c.name.split(" / ")[0]: c.count for c in register.categories}
        assert counts["Contenu des messages"] == 1  # the other one was destroyed
        assert counts["Pièces jointes"] == 1
        assert counts["Enregistrements détruits (empreintes seules)"] == 1
        assert counts["Comptes d'administration"] == 1

        page = report.render_html(register)
        for expected in (
            "Dossier médical",
            "Code de la santé publique",
            "Courte",
            "M. Ancien",
            "contentieux ordinal",
            "droit d&#39;accès",
            "secretariat",
            "Intègre / intact",
            "SQLCipher (AES-256",
            "set-",
            register.box_fingerprint,
        ):
            assert expected in page, expected
        assert "<script>Pixel" not in page and "&lt;script&gt;Pixel" in page
        pdf = report.render_pdf(register)
        # The PDF says what the page says (its text, not only a %PDF header).
        text = pdf_words(pdf)
        for expected in (
            "RGPD art. 30",
            "Dossier médical",
            "Code de la santé publique",
            "Courte",
            "M. Ancien",
            "contentieux ordinal",
            "droit d'accès",
            "secretariat",
            "Intègre / intact",
            "SQLCipher (AES-256",
            "<script>Pixel</script>",
            register.box_fingerprint,
        ):
            assert expected in text, expected
    finally:
        box.close()


def test_integrity_failure_and_unchecked_status_are_reported() -> None:
    failed = report.IntegrityStatus(int(time.time() * 1000), False, ("log: leaf 3 is missing",))
    assert "ÉCHEC" in failed.summary() and "leaf 3" in failed.summary()
    assert "not checked" in report.IntegrityStatus(None, None).summary()


def _text_of_pdf(pdf: bytes) -> str:
    import subprocess

    done = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf,
                          capture_output=True, check=True)  # fmt: skip
    return " ".join(done.stdout.decode().split())


def test_register_names_the_controller_purposes_bases_and_transfers(tmp_path: Path) -> None:
    import html

    from archive_helpers import message
    from strongroom.archive import writes
    from strongroom.office.register_facts import CONTROLLER_ADDRESS, DPO, PRACTICE_NAME

    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive, owner="dr.martin", name="Pixel")
        say(box, phone, "consultation", peer="Mme Patiente", conv="p1", owner="dr.martin")
        # A conversation whose phone named no peer: the sender of its incoming message counts.
        incoming = message(phone[1], "Bonjour docteur", conv="p2", direction="in", at=T0)
        box.archive.write(writes.store_record(incoming, phone[0], "dr.martin"))
        for key, text in (
            (PRACTICE_NAME, "Cabinet du Dr Martin"),
            (CONTROLLER_ADDRESS, "3 rue de la Paix, 69001 Lyon"),
            (DPO, "Me Dupont, dpo@example.org"),
        ):
            box.archive.conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, text))
        box.archive.write(
            create_policy(PolicySpec("Courte", Duration(1, "days"), "record_date", "destroy"), "a")
        )
        register = report.build_register(
            box.archive.conn,
            now_ms=T0,
            data_dir=box.data_dir,
            box_public_key=box.keys.signing_public,
        )
        contacts = next(c for c in register.categories if c.name.startswith("Contacts"))
        assert contacts.count == 2  # Mme Patiente, and M. Martin who wrote in p2
        page = html.unescape(report.render_html(register))
        pdf = _text_of_pdf(report.render_pdf(register))
    finally:
        box.close()
    for wanted in (
        "Responsable du traitement / controller",
        "Cabinet du Dr Martin",
        "3 rue de la Paix, 69001 Lyon",
        "Me Dupont, dpo@example.org",
        "Finalités / purposes",
        "Bases légales / legal bases",
        "Art. 9(2)(h)",
        "Personnes concernées / categories of data subjects",
        "Destinataires / recipients",
        "Aucun transfert hors de l'Union européenne",
        "date de l'enregistrement / record date",
        "détruire / destroy",
        "1 jours / days",
        "tant que le compte existe / while the account exists",
    ):
        assert wanted in page, wanted
        assert wanted in pdf, wanted
    for code in ("record_date", "'destroy'"):
        assert code not in page and code not in pdf
