"""What the art. 30 register says about the processing itself, in French and English.

The controller's name is the practice name of the setup wizard; its address
and the data protection officer are register settings (web: GDPR register →
Register details; CLI: `strongroom register-details`). The rest describes
what the box does, and holds for every box: purposes, legal bases, who the
data is about, who receives it, transfers (none), retention per category.

Every value the register shows is bilingual "français / English", including
the codes stored in the archive (record_date, destroy, archivist…).
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.store import Txn, WriteOpOf

PRACTICE_NAME = "practice_name"  # the wizard's setting (web.settings.PRACTICE_NAME)
CONTROLLER_ADDRESS = "register_controller_address"
DPO = "register_dpo"
TIME_ZONE = "time_zone"  # the practice's zone: exports show local times in it (and UTC)
DETAIL_KEYS = (PRACTICE_NAME, CONTROLLER_ADDRESS, DPO, TIME_ZONE)
NOT_SET = "non renseigné / not set"
MAX_DETAIL_CHARS = 200

PURPOSES = (
    "Conservation du dossier professionnel (échanges avec les clients, patients et"
    " correspondants) exigée par la profession / keeping the professional file"
    " (exchanges with clients, patients and correspondents) as the profession requires",
    "Preuve de ce qui a été dit, quand et à qui (exports scellés pour une juridiction,"
    " un ordre, une demande d'accès) / proof of what was said, when and to whom (sealed"
    " exports for a court, a professional body, an access request)",
    "Restitution de l'historique aux téléphones du cabinet / restoring the history to the"
    " practice's phones",
    "Sécurité et traçabilité (journal d'audit, contrôle d'intégrité) / security and"
    " accountability (audit trail, integrity checks)",
)

LEGAL_BASES = (
    "Art. 6(1)(c) RGPD : obligation légale de conservation (ex. code de la santé publique"
    " R1112-7, règlement intérieur national de la profession d'avocat) / GDPR art. 6(1)(c):"
    " legal obligation to keep records",
    "Art. 6(1)(b) : exécution du contrat avec le client ou le patient / performance of the"
    " contract with the client or patient",
    "Art. 9(2)(h) : données de santé traitées par un professionnel soumis au secret /"
    " health data processed by a professional bound by secrecy",
    "Art. 9(2)(f) : constatation, exercice ou défense de droits en justice / establishment,"
    " exercise or defence of legal claims",
)

SUBJECTS = (
    "Clients et patients / clients and patients",
    "Correspondants (confrères, experts, juridictions) / correspondents (colleagues,"
    " experts, courts)",
    "Personnel du cabinet (détenteurs des téléphones, comptes) / the practice's staff"
    " (phone holders, accounts)",
)

RECIPIENTS = (
    "Personnel habilité du cabinet (rôles administrateur, archiviste, auditeur) /"
    " authorised staff of the practice (administrator, archivist, auditor roles)",
    "Destinataires des exports scellés enregistrés au journal (liste ci-dessous) /"
    " recipients of the sealed exports recorded in the audit trail (listed below)",
)

TRANSFERS = (
    "Aucun transfert hors de l'Union européenne : les données restent sur le boîtier, dans"
    " les locaux, qui n'ouvre aucune connexion hors du réseau local / no transfer outside"
    " the European Union: the data stays on the box, on the premises, which opens no"
    " connection outside the local network"
)

# Codes stored in the archive, as the register shows them.
VALUES = {
    "record_date": "date de l'enregistrement / record date",
    "last_activity": "dernière activité / last activity",
    "matter_closed": "clôture du dossier / matter closed",
    "destroy": "détruire / destroy",
    "review": "réexaminer / review",
    "conversation": "conversation",
    "contact": "contact",
    "owner": "détenteur / owner",
    "person": "personne / person",
    "date_range": "période / period",
    "admin": "administrateur / administrator",
    "archivist": "archiviste / archivist",
    "auditor": "auditeur / auditor",
    "staff": "personnel / staff",
    "days": "jours / days",
    "months": "mois / months",
    "years": "ans / years",
}


def value(code: object) -> str:
    return VALUES.get(str(code), str(code))


@dataclass(frozen=True)
class Controller:
    name: str
    address: str
    dpo: str


def unknown_controller() -> Controller:
    return Controller(NOT_SET, NOT_SET, "non désigné / not designated")


def read_details(conn: Connection) -> dict[str, str]:
    found = {key: "" for key in DETAIL_KEYS}
    try:
        rows = conn.execute(
            "SELECT key, value FROM settings WHERE key IN (?, ?, ?, ?)", DETAIL_KEYS
        ).fetchall()
    except Exception:  # an archive without a settings table
        rows = []
    found.update({str(k): str(v) for k, v in rows})
    return found


def controller(conn: Connection) -> Controller:
    details = read_details(conn)
    return Controller(
        details[PRACTICE_NAME] or NOT_SET,
        details[CONTROLLER_ADDRESS] or NOT_SET,
        details[DPO] or "non désigné / not designated",
    )


def contacts(conn: Connection) -> int:
    """The people the practice exchanged with: named other parties, and every sender of
    an incoming message (a conversation's peer field is often left empty by phones)."""
    names = {
        " ".join(str(name).split()).casefold()
        for (name,) in conn.execute(
            "SELECT peer FROM conversations WHERE peer != ''"
            " UNION SELECT sender FROM messages WHERE direction = 'in' AND sender != ''"
        )
    }
    return len(names)


def retention_note(category: str) -> str:
    """How long each category is kept (the rules themselves are listed below)."""
    return {
        "messages": "selon la règle de conservation affectée, sinon jusqu'à décision du"
        " cabinet / under the assigned retention rule, otherwise until the practice decides",
        "destroyed": "empreintes gardées pour la preuve du journal / hashes kept to prove the log",
        "devices": "jusqu'à révocation, puis gardés pour la preuve / until revoked, then kept"
        " as proof",
        "accounts": "tant que le compte existe / while the account exists",
        "audit": "durée de vie du boîtier (preuve des accès) / the box's lifetime (proof of"
        " access)",
    }[category]


def set_details_op(details: dict[str, str], actor: str) -> WriteOpOf[None]:
    """Store the register details given (others untouched); an audit event names them."""
    changes = {k: " ".join(v.split())[:MAX_DETAIL_CHARS] for k, v in details.items()}
    unknown = set(changes) - set(DETAIL_KEYS)
    if unknown:
        raise ValueError(f"unknown register details {sorted(unknown)}")
    if changes.get(TIME_ZONE):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(changes[TIME_ZONE])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {changes[TIME_ZONE]!r}") from None

    def op(txn: Txn) -> None:
        for key, text in changes.items():
            txn.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
        writes.audit(actor, "register.details", "art30", changes)(txn)

    return op
