"""The GDPR art. 30 register of the box, from live data, as HTML and PDF.

`build_register` gathers facts (sans rendering): categories of data with counts
and where they live, how they are protected, retention rules in force and their
assignments, legal holds, destructions, exports, backups, devices, admins and
the integrity status. `render_html` and `render_pdf` present the same register.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2

from strongroom.archive.db import Connection
from strongroom.archive.store import Archive
from strongroom.archive.verify import VerifyReport, verify_open_archive
from strongroom.office.bundle_pdf import DEJAVU_DIR, PdfRenderer
from strongroom.office.certificates import CertificateInfo, list_certificates
from strongroom.office.holds import Hold, list_holds
from strongroom.office.policies import Assignment, Policy, list_assignments, list_policies
from strongroom.office.sealed import box_key_fingerprint
from strongroom.office.verify_text import SIGNING_LABEL_EN, SIGNING_LABEL_FR

PROTECTION = (
    "Base d'archives chiffrée par SQLCipher (AES-256, pages authentifiées HMAC-SHA512),"
    " clé brute de 256 bits dérivée des 24 mots (BLAKE2b, séparation de domaine).",
    "Pièces jointes chiffrées fichier par fichier (XChaCha20-Poly1305, blocs de 64 Kio,"
    " une clé par fichier dérivée de la clé des pièces jointes et d'un sel en base).",
    "Échanges avec les téléphones chiffrés de bout en bout (Noise XX,"
    " X25519/ChaCha20-Poly1305/BLAKE2b) ; le boîtier n'ouvre aucune connexion hors du LAN.",
    "Intégrité : journal Merkle RFC 6962 signé Ed25519 par le boîtier ; chaque"
    " enregistrement est signé par l'appareil qui l'a écrit.",
    "Effacement : contenu, index plein texte et pièces jointes détruits (secure_delete,"
    " VACUUM, WAL tronqué) ; les empreintes restent au journal.",
    "Sauvegardes : locales uniquement, chiffrées (XChaCha20-Poly1305 secretstream) sous une"
    " clé dérivée des 24 mots ; manifeste signé par le boîtier.",
)


@dataclass(frozen=True)
class IntegrityStatus:
    checked_at_ms: int | None
    ok: bool | None
    problems: tuple[str, ...] = ()
    tree_size: int = 0
    records: int = 0
    destroyed: int = 0

    @classmethod
    def from_report(cls, report: VerifyReport, at_ms: int) -> IntegrityStatus:
        size = report.tree_head.tree_size if report.tree_head else 0
        return cls(at_ms, report.ok, tuple(report.problems), size, report.records, report.destroyed)

    def summary(self) -> str:
        if self.checked_at_ms is None or self.ok is None:
            return "Non vérifiée / not checked"
        when = _date(self.checked_at_ms)
        if self.ok:
            return (
                f"Intègre / intact ({when}) : {self.records} enregistrements dont"
                f" {self.destroyed} détruits, journal de {self.tree_size} entrées"
            )
        return f"ÉCHEC / FAILED ({when}) : " + "; ".join(self.problems[:10])


def check_integrity(archive: Archive, now_ms: int) -> IntegrityStatus:
    """Run verify_archive now (for the report's integrity line)."""
    report = verify_open_archive(archive)
    return IntegrityStatus.from_report(report, now_ms)


@dataclass(frozen=True)
class Category:
    name: str
    people: str
    count: int
    where: str


@dataclass(frozen=True)
class Event:
    at_ms: int
    actor: str
    target: str
    details: dict[str, object]


@dataclass(frozen=True)
class Device:
    name: str
    owner: str
    role: str
    paired_at: int
    revoked_at: int | None


@dataclass(frozen=True)
class Admin:
    username: str
    role: str
    disabled: bool


@dataclass
class Register:
    generated_at_ms: int
    box_fingerprint: str
    data_dir: str
    categories: list[Category]
    protection: tuple[str, ...]
    policies: list[Policy]
    assignments: list[Assignment]
    holds: list[Hold]
    destructions: list[CertificateInfo]
    exports: list[Event]
    backups: list[Event]
    devices: list[Device]
    admins: list[Admin]
    integrity: IntegrityStatus
    policy_names: dict[int, str] = field(default_factory=dict)


def _count(conn: Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def _events(conn: Connection, action: str) -> list[Event]:
    return [
        Event(int(at), str(actor), str(target), json.loads(details))
        for at, actor, target, details in conn.execute(
            "SELECT at, actor, target, details FROM audit_events WHERE action = ? ORDER BY at",
            (action,),
        )
    ]


def build_register(
    conn: Connection,
    *,
    now_ms: int,
    data_dir: Path,
    box_public_key: bytes,
    integrity: IntegrityStatus | None = None,
) -> Register:
    db = f"{data_dir / 'archive.db'} (SQLCipher)"
    blobs = f"{data_dir / 'blobs'} (fichiers chiffrés)"
    categories = [
        Category(
            "Contenu des messages",
            "clients, patients, correspondants ; personnel",
            _count(conn, "SELECT count(*) FROM messages"),
            db,
        ),
        Category(
            "Pièces jointes",
            "clients, patients, correspondants",
            _count(conn, "SELECT count(*) FROM blobs WHERE destroyed_at IS NULL"),
            blobs,
        ),
        Category(
            "Accusés de réception et métadonnées d'échange",
            "correspondants",
            _count(conn, "SELECT count(*) FROM receipts"),
            db,
        ),
        Category(
            "Enregistrements détruits (empreintes seules)",
            "—",
            _count(conn, "SELECT count(*) FROM records WHERE destroyed_at IS NOT NULL"),
            db,
        ),
        Category(
            "Contacts (interlocuteurs des conversations)",
            "clients, patients",
            _count(conn, "SELECT count(DISTINCT peer) FROM conversations WHERE peer != ''"),
            db,
        ),
        Category(
            "Appareils appariés et leurs détenteurs",
            "personnel",
            _count(conn, "SELECT count(*) FROM devices"),
            db,
        ),
        Category(
            "Comptes d'administration",
            "personnel",
            _count(conn, "SELECT count(*) FROM users"),
            db,
        ),
        Category(
            "Journal d'audit (consultations, exports, destructions)",
            "personnel",
            _count(conn, "SELECT count(*) FROM audit_events"),
            db,
        ),
    ]
    policies = list_policies(conn)
    return Register(
        generated_at_ms=now_ms,
        box_fingerprint=box_key_fingerprint(box_public_key),
        data_dir=str(data_dir),
        categories=categories,
        protection=PROTECTION,
        policies=policies,
        assignments=list_assignments(conn),
        holds=list_holds(conn, active_only=True),
        destructions=list_certificates(conn),
        exports=_events(conn, "export"),
        backups=_events(conn, "backup"),
        devices=[
            Device(str(n), str(o), str(r), int(p), None if v is None else int(v))
            for n, o, r, p, v in conn.execute(
                "SELECT name, owner, role, paired_at, revoked_at FROM devices ORDER BY paired_at"
            )
        ],
        admins=[
            Admin(str(u), str(r), bool(d))
            for u, r, d in conn.execute(
                "SELECT username, role, disabled FROM users ORDER BY username"
            )
        ],
        integrity=integrity or IntegrityStatus(None, None),
        policy_names={p.id: p.name for p in policies},
    )


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


_TEMPLATE = """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>Registre des traitements (RGPD art. 30)</title>
<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #bbb;padding:.3em .6em;
text-align:left}</style></head><body>
<h1>Registre des activités de traitement — RGPD art. 30</h1>
<p>Records of processing activities. Généré le / generated {{ date(r.generated_at_ms) }} ·
{{ signing_label }} <code>{{ r.box_fingerprint }}</code> ·
données / data <code>{{ r.data_dir }}</code></p>
<h2>Intégrité / integrity</h2><p>{{ r.integrity.summary() }}</p>
<h2>Catégories de données / data categories</h2>
<table><tr><th>Catégorie</th><th>Personnes concernées</th><th>Nombre</th><th>Lieu</th></tr>
{% for c in r.categories %}<tr><td>{{ c.name }}</td><td>{{ c.people }}</td>
<td>{{ c.count }}</td><td>{{ c.where }}</td></tr>{% endfor %}</table>
<h2>Mesures de sécurité (art. 32) / security measures</h2>
<ul>{% for p in r.protection %}<li>{{ p }}</li>{% endfor %}</ul>
<h2>Durées de conservation / retention in force</h2>
<table><tr><th>Règle</th><th>Durée</th><th>Point de départ</th><th>À l'échéance</th>
<th>Fondement</th></tr>{% for p in r.policies %}<tr><td>{{ p.name }}</td>
<td>{{ p.duration.label() }}</td><td>{{ p.start_event }}</td><td>{{ p.action }}</td>
<td>{{ p.legal_basis }}</td></tr>{% endfor %}</table>
<table><tr><th>Affectation</th><th>Sujet</th><th>Règle</th><th>Par</th></tr>
{% for a in r.assignments %}<tr><td>{{ a.scope }}</td><td>{{ a.subject }}</td>
<td>{{ r.policy_names.get(a.policy_id, a.policy_id) }}</td><td>{{ a.assigned_by }}</td></tr>
{% else %}<tr><td colspan="4">Aucune / none</td></tr>{% endfor %}</table>
<h2>Gels juridiques en cours / legal holds</h2>
<table><tr><th>Objet</th><th>Motif</th><th>Posé par</th><th>Le</th></tr>
{% for h in r.holds %}<tr><td>{{ h.spec.subject() }}</td><td>{{ h.spec.reason }}</td>
<td>{{ h.placed_by }}</td><td>{{ date(h.placed_at) }}</td></tr>
{% else %}<tr><td colspan="4">Aucun / none</td></tr>{% endfor %}</table>
<h2>Destructions</h2>
<table><tr><th>Certificat</th><th>Date</th><th>Approuvé par</th><th>Enregistrements</th></tr>
{% for d in r.destructions %}<tr><td>{{ d.id }}</td><td>{{ date(d.created_at) }}</td>
<td>{{ d.approver }}</td><td>{{ d.record_count }}</td></tr>
{% else %}<tr><td colspan="4">Aucune / none</td></tr>{% endfor %}</table>
<h2>Exports (communications de données / disclosures)</h2>
<table><tr><th>Date</th><th>Par</th><th>Objet</th><th>Destinataire</th><th>Motif</th></tr>
{% for e in r.exports %}<tr><td>{{ date(e.at_ms) }}</td><td>{{ e.actor }}</td>
<td>{{ e.target }}</td><td>{{ e.details.get("recipient", "") }}</td>
<td>{{ e.details.get("reason", "") }}</td></tr>
{% else %}<tr><td colspan="5">Aucun / none</td></tr>{% endfor %}</table>
<h2>Sauvegardes / backups</h2>
<table><tr><th>Date</th><th>Destination</th><th>Jeu</th></tr>
{% for b in r.backups %}<tr><td>{{ date(b.at_ms) }}</td><td>{{ b.target }}</td>
<td>{{ b.details.get("set", "") }}</td></tr>
{% else %}<tr><td colspan="3">Aucune / none</td></tr>{% endfor %}</table>
<h2>Appareils / devices</h2>
<table><tr><th>Nom</th><th>Détenteur</th><th>Rôle</th><th>Apparié le</th><th>Révoqué le</th></tr>
{% for d in r.devices %}<tr><td>{{ d.name }}</td><td>{{ d.owner }}</td><td>{{ d.role }}</td>
<td>{{ date(d.paired_at) }}</td><td>{{ date(d.revoked_at) if d.revoked_at else "—" }}</td></tr>
{% endfor %}</table>
<h2>Administrateurs / admins</h2>
<table><tr><th>Compte</th><th>Rôle</th><th>État</th></tr>
{% for a in r.admins %}<tr><td>{{ a.username }}</td><td>{{ a.role }}</td>
<td>{{ "désactivé" if a.disabled else "actif" }}</td></tr>
{% else %}<tr><td colspan="3">Aucun / none</td></tr>{% endfor %}</table>
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def render_html(register: Register) -> str:
    signing_label = f"{SIGNING_LABEL_FR} / {SIGNING_LABEL_EN}"
    return _ENV.from_string(_TEMPLATE).render(r=register, date=_date, signing_label=signing_label)


def render_pdf(register: Register, font_dir: Path = DEJAVU_DIR) -> bytes:
    r = register
    pdf = PdfRenderer(
        "Registre des activités de traitement — RGPD art. 30",
        [
            ("Généré le / generated", _date(r.generated_at_ms)),
            (f"{SIGNING_LABEL_FR} / {SIGNING_LABEL_EN}", r.box_fingerprint),
            ("Données / data", r.data_dir),
        ],
        font_dir,
    )
    pdf.add_heading("Intégrité / integrity")
    pdf.add_paragraph(r.integrity.summary())
    pdf.add_heading("Catégories de données / data categories")
    for c in r.categories:
        pdf.add_paragraph(f"• {c.name} — {c.count} — {c.people} — {c.where}", 9)
    pdf.add_heading("Mesures de sécurité (art. 32) / security measures")
    for line in r.protection:
        pdf.add_paragraph(f"• {line}", 9)
    pdf.add_heading("Durées de conservation / retention in force")
    for p in r.policies:
        pdf.add_paragraph(
            f"• {p.name} : {p.duration.label()}, départ {p.start_event}, puis {p.action}."
            f" {p.legal_basis}",
            9,
        )
    for a in r.assignments:
        name = r.policy_names.get(a.policy_id, str(a.policy_id))
        pdf.add_paragraph(f"  {a.scope} « {a.subject} » → {name} (par {a.assigned_by})", 9)
    pdf.add_heading("Gels juridiques / legal holds")
    for h in r.holds or []:
        pdf.add_paragraph(f"• {h.spec.subject()} — {h.spec.reason} — {h.placed_by}", 9)
    if not r.holds:
        pdf.add_paragraph("Aucun / none", 9)
    pdf.add_heading("Destructions")
    for d in r.destructions:
        pdf.add_paragraph(
            f"• certificat {d.id}, {_date(d.created_at)}, {d.record_count} enregistrements,"
            f" approuvé par {d.approver}",
            9,
        )
    if not r.destructions:
        pdf.add_paragraph("Aucune / none", 9)
    pdf.add_heading("Exports")
    for e in r.exports:
        pdf.add_paragraph(
            f"• {_date(e.at_ms)} {e.actor} : {e.target} pour {e.details.get('recipient', '')}"
            f" ({e.details.get('reason', '')})",
            9,
        )
    if not r.exports:
        pdf.add_paragraph("Aucun / none", 9)
    pdf.add_heading("Sauvegardes / backups")
    for b in r.backups:
        pdf.add_paragraph(f"• {_date(b.at_ms)} → {b.target} ({b.details.get('set', '')})", 9)
    if not r.backups:
        pdf.add_paragraph("Aucune / none", 9)
    pdf.add_heading("Appareils / devices")
    for dev in r.devices:
        revoked = f", révoqué le {_date(dev.revoked_at)}" if dev.revoked_at else ""
        pdf.add_paragraph(f"• {dev.name} ({dev.owner}, {dev.role}){revoked}", 9)
    pdf.add_heading("Administrateurs / admins")
    for adm in r.admins:
        pdf.add_paragraph(
            f"• {adm.username} ({adm.role}{', désactivé' if adm.disabled else ''})", 9
        )
    if not r.admins:
        pdf.add_paragraph("Aucun / none", 9)
    return pdf.output()
