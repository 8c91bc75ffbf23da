"""Stored codes, as a person reads them: audit actions, device roles, pairing methods,
record kinds and the keys of audit details. Unknown codes are shown as they are."""

from __future__ import annotations

import json
from typing import Any

from strongroom.web.i18n import N_, Translator

AUDIT_ACTIONS = {
    "login": N_("Logged in"),
    "logout": N_("Logged out"),
    "login.failed": N_("Failed login"),
    "login.locked_out": N_("Login refused (too many mistakes)"),
    "box.unlock": N_("Box unlocked"),
    "setup.identity": N_("Box identity created"),
    "setup.restore": N_("Box restored from a backup"),
    "settings.change": N_("Setting changed"),
    "user.create": N_("User created"),
    "user.disable": N_("User disabled"),
    "user.enable": N_("User enabled"),
    "user.passphrase": N_("Passphrase changed"),
    "user.passphrase_refused": N_("Passphrase change refused"),
    "user.reset": N_("Login reset by an administrator"),
    "keystore.slot_remove": N_("Unlock right removed"),
    "pairing.press": N_("Pairing window opened"),
    "pairing.qr": N_("Pairing QR code shown"),
    "pairing.confirm": N_("Phone paired"),
    "pairing.reject": N_("Phone refused"),
    "device.rename": N_("Phone renamed"),
    "device.revoke": N_("Phone revoked"),
    "device.log_ahead": N_("A phone saw a longer log than the box has"),
    "archive.search": N_("Archive searched"),
    "archive.view": N_("Record viewed"),
    "archive.download": N_("Attachment downloaded"),
    "export": N_("Sealed export made"),
    "export.download": N_("Sealed export downloaded"),
    "report.view": N_("GDPR register viewed"),
    "backup.create": N_("Backup made"),
    "backup.done": N_("Backup made"),
    "backup.failed": N_("Backup failed"),
    "integrity.verify": N_("Integrity checked"),
    "integrity.ok": N_("Integrity check passed"),
    "integrity.failed": N_("Integrity check FAILED"),
    "integrity.loss_acknowledged": N_("Lost commits acknowledged"),
    "hold.place": N_("Legal hold placed"),
    "hold.lift": N_("Legal hold lifted"),
    "matter.close": N_("Matter closed"),
    "matter.reopen": N_("Matter reopened"),
    "retention.assign": N_("Retention policy assigned"),
    "retention.unassign": N_("Retention assignment removed"),
    "retention.keep": N_("Record kept at review"),
    "retention.policy.create": N_("Retention policy created"),
    "retention.policy.update": N_("Retention policy changed"),
    "retention.policy.delete": N_("Retention policy deleted"),
}
DETAIL_KEYS = {
    "from": N_("from"),
    "to": N_("to"),
    "role": N_("role"),
    "reason": N_("reason"),
    "mode": N_("mode"),
    "admin": N_("administrator"),
    "value": N_("value"),
    "keyfile": N_("key file"),
    "unlock_slot": N_("can unlock the box"),
    "format": N_("format"),
    "records": N_("records"),
    "blobs": N_("attachments"),
    "tree_size": N_("log size"),
    "set": N_("backup set"),
    "ok": N_("succeeded"),
    "phone_log_size": N_("log size the phone saw"),
    "file": N_("file"),
    "note": N_("note"),
}
DEVICE_ROLES = {"staff": N_("staff member"), "admin": N_("Administrator")}
USER_ROLES = {"admin": N_("Administrator"), "archivist": N_("Archivist"), "auditor": N_("Auditor")}
PAIRING_METHODS = {
    "button": N_("PAIR button and code"),
    "qr": N_("QR code"),
    "test": N_("test pairing"),
}
RECORD_KINDS = {
    "message": N_("message"),
    "edit": N_("edit"),
    "deletion": N_("deletion"),
    "receipt": N_("receipt"),
    "attachment": N_("attachment"),
}
_YES_NO = {True: N_("yes"), False: N_("no")}
TABLES = {
    "action": AUDIT_ACTIONS,
    "role": DEVICE_ROLES,
    "pairing": PAIRING_METHODS,
    "kind": RECORD_KINDS,
}


def name_of(translate: Translator, table: str, code: str) -> str:
    """The translated name of a stored code, or the code itself if it has none."""
    msgid = TABLES[table].get(code)
    return translate(msgid) if msgid else code


def details(translate: Translator, raw: str) -> list[tuple[str, str]]:
    """An audit event's JSON details as (label, value) pairs a person can read."""
    try:
        body: Any = json.loads(raw) if raw else {}
    except ValueError:
        return [("", raw)]
    if not isinstance(body, dict):
        return [("", raw)]
    out: list[tuple[str, str]] = []
    for key, value in body.items():
        if value is None or value == "":
            continue
        label = translate(DETAIL_KEYS[key]) if key in DETAIL_KEYS else key
        if isinstance(value, bool):
            text = translate(_YES_NO[value])
        elif key == "role" and isinstance(value, str):
            msgid = USER_ROLES.get(value) or DEVICE_ROLES.get(value)
            text = translate(msgid) if msgid else value
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            text = json.dumps(value, ensure_ascii=False)
        out.append((label, text))
    return out
