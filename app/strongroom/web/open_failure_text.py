"""What the unlock page, the panel's status line and the CLI say when the archive
could not be opened: damage (restore from a backup) or not (archive/open_failure.py).

Only a damaged file sends the office manager to a backup: a restore loses what was
written since it was taken, so a locked, full, read-only or unreachable file says
what to put right instead, and that nothing is damaged.
"""

from __future__ import annotations

from strongroom.archive.errors import SchemaTooNew
from strongroom.archive.open_failure import OpenFailure, OpenFailureKind
from strongroom.web.i18n import N_, Translator

MESSAGES: dict[OpenFailureKind, str] = {
    OpenFailureKind.DAMAGED: N_(
        "The archive file is damaged and cannot be read (%(cause)s). Restore it from a"
        " backup (docs/operations.md, Restore onto a new box)."
    ),
    OpenFailureKind.LOCKED: N_(
        "Another program holds the archive locked (%(cause)s): a second copy of the"
        " service, a database shell, a copy under way. Nothing is damaged: stop that"
        " program, then unlock again."
    ),
    OpenFailureKind.DISK_FULL: N_(
        "The storage is full: the archive cannot be opened (%(cause)s). Nothing is"
        " damaged: free some space on the data disk, then unlock again."
    ),
    OpenFailureKind.READ_ONLY: N_(
        "The archive cannot be written: the file or its storage is read-only"
        " (%(cause)s). Nothing is damaged: make it writable for the service again,"
        " then unlock again."
    ),
    OpenFailureKind.NO_ACCESS: N_(
        "The service may not open the archive file: its owner or permissions changed"
        " (%(cause)s). Nothing is damaged: give it back to the strongroom user, then"
        " unlock again."
    ),
}


def open_failure_text(failure: OpenFailure, translate: Translator) -> str:
    return translate(MESSAGES[failure.kind], cause=failure.cause)


def unopened_text(failure: BaseException, translate: Translator) -> str:
    """What to say of a failure that is none of MESSAGES' kinds: a schema migrated by a
    newer release, or an update step that failed and rolled back (the file is sound)."""
    if isinstance(failure, SchemaTooNew):
        # A newer release migrated the archive, then the software went back
        # (install.sh --rollback --force): migrations never go backwards.
        return translate(
            "This archive was migrated by a newer release of Strongroom. Install that"
            " release again, or restore the backup taken before the upgrade"
            " (docs/operations.md, Upgrades)."
        )
    # The exception's type only: its text may quote the file or the key.
    return translate(
        "The archive could not be opened (%(error)s). An unfinished update is"
        " undone and starts again at the next unlock (docs/operations.md, Upgrades)."
    ) % {"error": type(failure).__name__}


__all__ = ["MESSAGES", "open_failure_text", "unopened_text"]
