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

from strongroom.archive.db import Connection
from strongroom.archive.store import Archive
from strongroom.archive.verify import VerifyReport
from strongroom.office import register_facts as facts
from strongroom.office.certificates import CertificateInfo, list_certificates
from strongroom.office.holds import Hold, list_holds
from strongroom.office.policies import Assignment, Policy, list_assignments, list_policies
from strongroom.office.sealed import box_key_fingerprint

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
    " index FTS5 en secure-delete, pages libres réécrites, WAL tronqué) ; les empreintes"
    " restent au journal.",
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
    """Verify the whole archive now (for the report's integrity line), kept in
    `verifications` as the register's check (the Integrity page lists it)."""
    from strongroom.archive.verify_runs import run_verification

    report, _ = run_verification(archive, "full", purpose="register")
    return IntegrityStatus.from_report(report, now_ms)


@dataclass(frozen=True)
class Category:
    name: str
    people: str
    count: int
    where: str
    retention: str = ""


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
    controller: facts.Controller = field(default_factory=facts.unknown_controller)
    purposes: tuple[str, ...] = facts.PURPOSES
    legal_bases: tuple[str, ...] = facts.LEGAL_BASES
    subjects: tuple[str, ...] = facts.SUBJECTS
    recipients: tuple[str, ...] = facts.RECIPIENTS
    transfers: str = facts.TRANSFERS


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
    kept = facts.retention_note
    categories = [
        Category(
            "Contenu des messages / message content",
            "clients, patients, correspondants ; personnel / clients, patients,"
            " correspondents; staff",
            _count(conn, "SELECT count(*) FROM messages"),
            db,
            kept("messages"),
        ),
        Category(
            "Pièces jointes / attachments",
            "clients, patients, correspondants / clients, patients, correspondents",
            _count(conn, "SELECT count(*) FROM blobs WHERE destroyed_at IS NULL"),
            blobs,
            kept("messages"),
        ),
        Category(
            "Accusés de réception et métadonnées d'échange / receipts and exchange metadata",
            "correspondants / correspondents",
            _count(conn, "SELECT count(*) FROM receipts"),
            db,
            kept("messages"),
        ),
        Category(
            "Enregistrements détruits (empreintes seules) / destroyed records (hashes only)",
            "—",
            _count(conn, "SELECT count(*) FROM records WHERE destroyed_at IS NOT NULL"),
            db,
            kept("destroyed"),
        ),
        Category(
            "Contacts (interlocuteurs des conversations) / contacts (the other parties)",
            "clients, patients, correspondants / clients, patients, correspondents",
            facts.contacts(conn),
            db,
            kept("messages"),
        ),
        Category(
            "Appareils appariés et leurs détenteurs / paired phones and their holders",
            "personnel / staff",
            _count(conn, "SELECT count(*) FROM devices"),
            db,
            kept("devices"),
        ),
        Category(
            "Comptes d'administration / administration accounts",
            "personnel / staff",
            _count(conn, "SELECT count(*) FROM users"),
            db,
            kept("accounts"),
        ),
        Category(
            "Journal d'audit (consultations, exports, destructions) / audit trail",
            "personnel / staff",
            _count(conn, "SELECT count(*) FROM audit_events"),
            db,
            kept("audit"),
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
        controller=facts.controller(conn),
        recipients=facts.RECIPIENTS + _export_recipients(conn),
    )


def _export_recipients(conn: Connection) -> tuple[str, ...]:
    names = {str(e.details.get("recipient", "")).strip() for e in _events(conn, "export")}
    return tuple(sorted(n for n in names if n))


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


# Rendering lives in report_render (same register, HTML and PDF).
from strongroom.office.report_render import render_html, render_pdf  # noqa: E402

__all__ = ["Register", "build_register", "check_integrity", "render_html", "render_pdf"]
