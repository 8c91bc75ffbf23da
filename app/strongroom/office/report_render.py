"""The art. 30 register as HTML and as PDF: the same sections, the same values."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from strongroom.office.bundle_pdf import DEJAVU_DIR, PdfRenderer
from strongroom.office.pdf_notation import REGISTER_NOTATION_LEGEND
from strongroom.office.register_facts import value
from strongroom.office.verify_text import SIGNING_LABEL_EN, SIGNING_LABEL_FR

if TYPE_CHECKING:
    from strongroom.office.report import Register


def _date(ms: int) -> str:
    from strongroom.office.report import _date as date

    return date(ms)


# The register is one self-contained file (it is also saved by `strongroom report`),
# so its style is inline; the web UI allows exactly this style by its hash (CSP).
# Long names and fingerprints wrap: no sideways scroll, even at 390 px.
STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;"
    "overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin-bottom:1.5em;width:100%;table-layout:fixed}"
    "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left;overflow-wrap:anywhere}"
)
STYLE_CSP_SOURCE = f"'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'"

_TEMPLATE = (
    """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Registre des traitements (RGPD art. 30) / Records of processing</title>
<style>"""
    + STYLE
    + """</style></head><body>
<h1>Registre des activités de traitement — RGPD art. 30 / Records of processing activities</h1>
<p>Généré le / generated {{ date(r.generated_at_ms) }} ·
{{ signing_label }} <code>{{ r.box_fingerprint }}</code> ·
données / data <code>{{ r.data_dir }}</code></p>
<h2>Responsable du traitement / controller</h2>
{% if edit_link %}<p><a href="{{ edit_link }}">Modifier / edit</a></p>{% endif %}
<table><tr><th>Responsable du traitement / controller</th><td>{{ r.controller.name }}</td></tr>
<tr><th>Adresse / address</th><td>{{ r.controller.address }}</td></tr>
<tr><th>Délégué à la protection des données / data protection officer</th>
<td>{{ r.controller.dpo }}</td></tr></table>
{% for title, items in sections %}<h2>{{ title }}</h2>
<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>{% endfor %}
<h2>Intégrité / integrity</h2><p>{{ r.integrity.summary() }}</p>
<h2>Catégories de données / data categories</h2>
<table><tr><th>Catégorie / category</th><th>Personnes concernées / data subjects</th>
<th>Nombre / count</th><th>Lieu / where</th><th>Conservation / retention</th></tr>
{% for c in r.categories %}<tr><td>{{ c.name }}</td><td>{{ c.people }}</td>
<td>{{ c.count }}</td><td>{{ c.where }}</td><td>{{ c.retention }}</td></tr>{% endfor %}</table>
<h2>Mesures de sécurité (art. 32) / security measures</h2>
<ul>{% for p in r.protection %}<li>{{ p }}</li>{% endfor %}</ul>
<h2>Durées de conservation / retention rules in force</h2>
<table><tr><th>Règle / rule</th><th>Durée / duration</th><th>Point de départ / starts at</th>
<th>À l'échéance / when due</th><th>Fondement / basis</th></tr>{% for p in r.policies %}
<tr><td>{{ p.name }}</td><td>{{ p.duration.value }} {{ value(p.duration.unit) }}</td>
<td>{{ value(p.start_event) }}</td><td>{{ value(p.action) }}</td>
<td>{{ p.legal_basis }}</td></tr>{% endfor %}</table>
<table><tr><th>Affectation / assigned to</th><th>Sujet / subject</th><th>Règle / rule</th>
<th>Par / by</th></tr>
{% for a in r.assignments %}<tr><td>{{ value(a.scope) }}</td><td>{{ a.subject }}</td>
<td>{{ r.policy_names.get(a.policy_id, a.policy_id) }}</td><td>{{ a.assigned_by }}</td></tr>
{% else %}<tr><td colspan="4">Aucune / none</td></tr>{% endfor %}</table>
<h2>Gels juridiques en cours / legal holds</h2>
<table><tr><th>Objet / subject</th><th>Motif / reason</th><th>Posé par / by</th>
<th>Le / on</th></tr>
{% for h in r.holds %}<tr><td>{{ h.spec.subject() }}</td><td>{{ h.spec.reason }}</td>
<td>{{ h.placed_by }}</td><td>{{ date(h.placed_at) }}</td></tr>
{% else %}<tr><td colspan="4">Aucun / none</td></tr>{% endfor %}</table>
<h2>Destructions</h2>
<table><tr><th>Certificat / certificate</th><th>Date</th><th>Approuvé par / approved by</th>
<th>Enregistrements / records</th></tr>
{% for d in r.destructions %}<tr><td>{{ d.id }}</td><td>{{ date(d.created_at) }}</td>
<td>{{ d.approver }}</td><td>{{ d.record_count }}</td></tr>
{% else %}<tr><td colspan="4">Aucune / none</td></tr>{% endfor %}</table>
<h2>Exports (communications de données / disclosures)</h2>
<table><tr><th>Date</th><th>Par / by</th><th>Objet / scope</th>
<th>Destinataire / recipient</th><th>Motif / reason</th></tr>
{% for e in r.exports %}<tr><td>{{ date(e.at_ms) }}</td><td>{{ e.actor }}</td>
<td>{{ e.target }}</td><td>{{ e.details.get("recipient", "") }}</td>
<td>{{ e.details.get("reason", "") }}</td></tr>
{% else %}<tr><td colspan="5">Aucun / none</td></tr>{% endfor %}</table>
<h2>Sauvegardes / backups</h2>
<table><tr><th>Date</th><th>Destination</th><th>Jeu / set</th></tr>
{% for b in r.backups %}<tr><td>{{ date(b.at_ms) }}</td><td>{{ b.target }}</td>
<td>{{ b.details.get("set", "") }}</td></tr>
{% else %}<tr><td colspan="3">Aucune / none</td></tr>{% endfor %}</table>
<h2>Appareils / devices</h2>
<table><tr><th>Nom / name</th><th>Détenteur / holder</th><th>Rôle / role</th>
<th>Apparié le / paired</th><th>Révoqué le / revoked</th></tr>
{% for d in r.devices %}<tr><td>{{ d.name }}</td><td>{{ d.owner }}</td><td>{{ value(d.role) }}</td>
<td>{{ date(d.paired_at) }}</td><td>{{ date(d.revoked_at) if d.revoked_at else "—" }}</td></tr>
{% endfor %}</table>
<h2>Administrateurs / admins</h2>
<table><tr><th>Compte / account</th><th>Rôle / role</th><th>État / state</th></tr>
{% for a in r.admins %}<tr><td>{{ a.username }}</td><td>{{ value(a.role) }}</td>
<td>{{ "désactivé / disabled" if a.disabled else "actif / active" }}</td></tr>
{% else %}<tr><td colspan="3">Aucun / none</td></tr>{% endfor %}</table>
</body></html>
"""
)

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def _sections(r: Register) -> list[tuple[str, tuple[str, ...]]]:
    return [
        ("Finalités / purposes", r.purposes),
        ("Bases légales / legal bases", r.legal_bases),
        ("Personnes concernées / categories of data subjects", r.subjects),
        ("Destinataires / recipients", r.recipients),
        ("Transferts hors de l'UE / transfers outside the EU", (r.transfers,)),
    ]


def render_html(register: Register, edit_link: str | None = None) -> str:
    return _ENV.from_string(_TEMPLATE).render(
        r=register,
        edit_link=edit_link,
        date=_date,
        value=value,
        sections=_sections(register),
        signing_label=f"{SIGNING_LABEL_FR} / {SIGNING_LABEL_EN}",
    )


def render_pdf(register: Register, font_dir: Path = DEJAVU_DIR) -> bytes:
    r = register
    pdf = PdfRenderer(
        "Registre des activités de traitement — RGPD art. 30 / Records of processing activities",
        [
            ("Généré le / generated", _date(r.generated_at_ms)),
            (f"{SIGNING_LABEL_FR} / {SIGNING_LABEL_EN}", r.box_fingerprint),
            ("Données / data", r.data_dir),
        ],
        font_dir,
        legend=("Caractères / characters", REGISTER_NOTATION_LEGEND),
    )
    pdf.add_heading("Responsable du traitement / controller")
    pdf.add_paragraph(f"Responsable du traitement / controller : {r.controller.name}", 9)
    pdf.add_paragraph(f"Adresse / address : {r.controller.address}", 9)
    pdf.add_paragraph(
        f"Délégué à la protection des données / data protection officer : {r.controller.dpo}", 9
    )
    for title, items in _sections(r):
        pdf.add_heading(title)
        for item in items:
            pdf.add_paragraph(f"• {item}", 9)
    pdf.add_heading("Intégrité / integrity")
    pdf.add_paragraph(r.integrity.summary())
    pdf.add_heading("Catégories de données / data categories")
    for c in r.categories:
        pdf.add_paragraph(
            f"• {c.name} — {c.count} — {c.people} — {c.where} — conservation / retention :"
            f" {c.retention}",
            9,
        )
    pdf.add_heading("Mesures de sécurité (art. 32) / security measures")
    for line in r.protection:
        pdf.add_paragraph(f"• {line}", 9)
    pdf.add_heading("Durées de conservation / retention rules in force")
    for p in r.policies:
        pdf.add_paragraph(
            f"• {p.name} : {p.duration.value} {value(p.duration.unit)},"
            f" départ / starts at {value(p.start_event)}, puis / then {value(p.action)}."
            f" {p.legal_basis}",
            9,
        )
    for a in r.assignments:
        name = r.policy_names.get(a.policy_id, str(a.policy_id))
        pdf.add_paragraph(
            f"  {value(a.scope)} « {a.subject} » → {name} (par / by {a.assigned_by})", 9
        )
    _events_pdf(pdf, r)
    return pdf.output()


def _list_pdf(pdf: PdfRenderer, heading: str, lines: list[str], none: str | None) -> None:
    """A heading, one bullet per line, and `none` when there is no line."""
    pdf.add_heading(heading)
    for line in lines:
        pdf.add_paragraph(f"• {line}", 9)
    if not lines and none is not None:
        pdf.add_paragraph(none, 9)


def _events_pdf(pdf: PdfRenderer, r: Register) -> None:
    holds = [f"{h.spec.subject()} — {h.spec.reason} — {h.placed_by}" for h in r.holds or []]
    _list_pdf(pdf, "Gels juridiques / legal holds", holds, "Aucun / none")
    destructions = [
        f"certificat / certificate {d.id}, {_date(d.created_at)}, {d.record_count}"
        f" enregistrements / records, approuvé par / approved by {d.approver}"
        for d in r.destructions
    ]
    _list_pdf(pdf, "Destructions", destructions, "Aucune / none")
    exports = [
        f"{_date(e.at_ms)} {e.actor} : {e.target} pour / for"
        f" {e.details.get('recipient', '')} ({e.details.get('reason', '')})"
        for e in r.exports
    ]
    _list_pdf(pdf, "Exports (communications de données / disclosures)", exports, "Aucun / none")
    backups = [f"{_date(b.at_ms)} → {b.target} ({b.details.get('set', '')})" for b in r.backups]
    _list_pdf(pdf, "Sauvegardes / backups", backups, "Aucune / none")
    devices = [
        f"{dev.name} ({dev.owner}, {value(dev.role)})"
        + (f", révoqué le / revoked {_date(dev.revoked_at)}" if dev.revoked_at else "")
        for dev in r.devices
    ]
    _list_pdf(pdf, "Appareils / devices", devices, None)
    admins = [
        f"{adm.username} ({value(adm.role)}, "
        + ("désactivé / disabled" if adm.disabled else "actif / active")
        + ")"
        for adm in r.admins
    ]
    _list_pdf(pdf, "Administrateurs / admins", admins, "Aucun / none")
