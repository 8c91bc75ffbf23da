"""What a new box still needs: the checklist on the dashboard and the "what next" page.

Each step is read from the archive (never from a flag someone must remember to
set), so it ticks itself when the thing is done from anywhere: the web UI, the
CLI, a restore. The dashboard shows the list until every step is done.
"""

from __future__ import annotations

from dataclasses import dataclass

from strongroom.archive.db import Connection
from strongroom.web.i18n import N_
from strongroom.web.settings import BACKUP_TARGET, PRACTICE_NAME, get_setting


@dataclass(frozen=True)
class Step:
    key: str
    label: str  # msgid
    hint: str  # msgid: why it matters
    href: str  # where to do it ("" if it cannot be done later)
    done: bool


def _count(conn: Connection, sql: str) -> int:
    try:
        return int(conn.execute(sql).fetchone()[0])
    except Exception:
        return 0


def checklist(conn: Connection, *, backup_in_config: bool) -> list[Step]:
    words = _count(
        conn,
        "SELECT count(*) FROM audit_events WHERE action IN ('setup.identity', 'setup.restore')",
    )
    backup = backup_in_config or bool(get_setting(conn, BACKUP_TARGET))
    phones = _count(conn, "SELECT count(*) FROM devices")
    # Presets ship with the box: "chosen" means someone edited, created or assigned one.
    # Whether any such event exists, on the audit_action index: the trail grows for 20
    # years and the dashboard asks at each view (LIKE read every event).
    retention = _count(
        conn,
        "SELECT EXISTS (SELECT 1 FROM audit_events WHERE action >= 'retention.policy.'"
        " AND action < 'retention.policy/')"
        " + EXISTS (SELECT 1 FROM audit_events WHERE action = 'retention.assign')",
    ) + _count(conn, "SELECT count(*) FROM retention_assignments")
    admins = _count(conn, "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0")
    return [
        Step(
            "practice",
            N_("Name the practice"),
            N_("It appears on exports, reports and the recovery sheet."),
            "/setup/practice",
            bool(get_setting(conn, PRACTICE_NAME)),
        ),
        Step(
            "words",
            N_("24 words written down and confirmed"),
            N_("They restore the box if it is lost or broken."),
            "",  # shown once, at creation: nothing to link to
            words > 0,
        ),
        Step(
            "backup",
            N_("Choose a backup drive"),
            N_("A USB drive that receives an encrypted copy every night."),
            "/backups",
            backup,
        ),
        Step(
            "phone",
            N_("Pair the first phone"),
            N_("Press PAIR on the box, then confirm the code shown on the phone."),
            "/devices",
            phones > 0,
        ),
        Step(
            "retention",
            N_("Choose the default retention"),
            N_("How long records are kept before they are destroyed or reviewed."),
            "/office",
            retention > 0,
        ),
        Step(
            "second_admin",
            N_("Add a second administrator"),
            N_("So that someone else can unlock the box after a power cut."),
            "/users",
            admins >= 2,
        ),
    ]


def all_done(steps: list[Step]) -> bool:
    return all(step.done for step in steps)
