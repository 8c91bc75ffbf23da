"""Why the archive could not be opened: a damaged file, or something that is not damage.

The box's keys come from its keystore, so a failure to open the archive at unlock
is not a wrong passphrase. It used to be shown, whatever it was, as an integrity
failure ("restore from a backup"). Most causes are nothing of the kind and a
restore would lose what was written since the backup:

- LOCKED: another program holds the database (SQLITE_BUSY / SQLITE_LOCKED): a
  second copy of the service, a `sqlcipher` shell left open, a backup tool.
- DISK_FULL: the storage has no room left for the write-ahead log
  (SQLITE_FULL, or an I/O error on a file system with no free space).
- READ_ONLY: the file or its file system cannot be written (SQLITE_READONLY, or
  a file system mounted read-only: an SD card SQLite could only open read-only).
- NO_ACCESS: the service may not open the file at all (SQLITE_CANTOPEN, EACCES):
  its owner or mode changed.
- DAMAGED: SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_FORMAT, an I/O error with room
  left, or keys from the keystore that do not decrypt the file: the file itself is
  unreadable; restore from a backup.

Any other code is none of these (None): SQLITE_ERROR or SQLITE_CONSTRAINT from a
migration step that failed and rolled back, SQLITE_NOMEM, SQLITE_INTERRUPT. The
file is sound there, and a restore would throw away what was written since the
backup; the caller's own text applies (an unfinished update starts again).

The error code is read from sqlcipher3's `sqlite_errorcode` (SQLite's primary code
is its low byte); an error without one is told by its message, and an OSError by
its errno. The cause is looked for along the exception's chain, since the archive
wraps what SQLite raised (WrongArchiveKey, SchemaMigrationFailed).
"""

from __future__ import annotations

import enum
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlcipher3

from strongroom.archive.errors import WrongArchiveKey

# Below this much free space an I/O error at open is the disk being full (SQLite
# reports a -shm file it could not grow as SQLITE_IOERR, not SQLITE_FULL).
NEARLY_NO_SPACE_BYTES = 1 << 20

# SQLite's primary result codes (sqlite3.h).
_BUSY, _LOCKED, _READONLY, _IOERR, _FULL, _CANTOPEN, _PERM, _AUTH = 5, 6, 8, 10, 13, 14, 3, 23
_CORRUPT, _FORMAT, _NOTADB = 11, 24, 26


class OpenFailureKind(enum.StrEnum):
    DAMAGED = "damaged"
    LOCKED = "locked"
    DISK_FULL = "disk_full"
    READ_ONLY = "read_only"
    NO_ACCESS = "no_access"


@dataclass(frozen=True)
class OpenFailure:
    kind: OpenFailureKind
    # SQLite's error name (SQLITE_BUSY…) or the errno's (EACCES…): for the log and
    # the status line, never the file's path or contents.
    cause: str

    @property
    def damaged(self) -> bool:
        return self.kind is OpenFailureKind.DAMAGED


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _by_code(code: int, storage: Path) -> OpenFailureKind | None:
    primary = code & 0xFF
    if primary in (_BUSY, _LOCKED):
        return OpenFailureKind.LOCKED
    if primary == _FULL:
        return OpenFailureKind.DISK_FULL
    if primary == _READONLY:
        return OpenFailureKind.READ_ONLY
    if primary in (_CANTOPEN, _PERM, _AUTH):
        # SQLite says "unable to open" for a read-only file system as for a mode or owner.
        return OpenFailureKind.READ_ONLY if _read_only_fs(storage) else OpenFailureKind.NO_ACCESS
    if primary == _IOERR:
        return OpenFailureKind.DISK_FULL if _no_space(storage) else OpenFailureKind.DAMAGED
    if primary in (_CORRUPT, _NOTADB, _FORMAT):
        return OpenFailureKind.DAMAGED
    # SQLITE_ERROR, SQLITE_CONSTRAINT (a migration step that failed and rolled back),
    # NOMEM, INTERRUPT…: the file is sound; sending anyone to a backup would lose data.
    return None


_BY_MESSAGE = (
    ("database is locked", OpenFailureKind.LOCKED),
    ("database table is locked", OpenFailureKind.LOCKED),
    ("database or disk is full", OpenFailureKind.DISK_FULL),
    ("readonly database", OpenFailureKind.READ_ONLY),
    ("unable to open database file", OpenFailureKind.NO_ACCESS),
    ("file is not a database", OpenFailureKind.DAMAGED),
    ("database disk image is malformed", OpenFailureKind.DAMAGED),
)

_BY_ERRNO = {
    errno.EACCES: OpenFailureKind.NO_ACCESS,
    errno.EPERM: OpenFailureKind.NO_ACCESS,
    errno.EROFS: OpenFailureKind.READ_ONLY,
    errno.ENOSPC: OpenFailureKind.DISK_FULL,
    errno.EDQUOT: OpenFailureKind.DISK_FULL,
}


def _read_only_fs(storage: Path) -> bool:
    try:
        return bool(os.statvfs(storage).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _no_space(storage: Path) -> bool:
    try:
        return shutil.disk_usage(storage).free < NEARLY_NO_SPACE_BYTES
    except OSError:
        return False


def classify_open_failure(exc: BaseException, storage: Path) -> OpenFailure | None:
    """What an exception raised while opening the archive in `storage` (its directory)
    means; None when it is not the file's or the storage's (a wrong passphrase, a
    schema too new, a migration step that failed and rolled back, a bug)."""
    for link in _chain(exc):
        if isinstance(link, sqlcipher3.Error):
            code = getattr(link, "sqlite_errorcode", None)
            name = str(getattr(link, "sqlite_errorname", None) or type(link).__name__)
            if isinstance(code, int):
                by_code = _by_code(code, storage)
                if by_code is not None:
                    return OpenFailure(by_code, name)
                break
            text = str(link).lower()
            for needle, kind in _BY_MESSAGE:
                if needle in text:
                    if kind is OpenFailureKind.NO_ACCESS and _read_only_fs(storage):
                        kind = OpenFailureKind.READ_ONLY
                    return OpenFailure(kind, name)
            break  # an error SQLite did not name as damage: not the file's
        if isinstance(link, OSError) and link.errno in _BY_ERRNO:
            return OpenFailure(_BY_ERRNO[link.errno], errno.errorcode[link.errno])
    if isinstance(exc, WrongArchiveKey):
        # The keys come from the keystore: a file they do not decrypt is not this
        # box's archive as it was written (a damaged header, a file swapped in).
        return OpenFailure(OpenFailureKind.DAMAGED, "WrongArchiveKey")
    return None


__all__ = ["OpenFailure", "OpenFailureKind", "classify_open_failure"]
