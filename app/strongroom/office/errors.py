"""Records-office failures a caller can act on.

Write-op failures derive from ArchiveError so `Archive.write_batch` rolls back
that operation alone and `Archive.write` re-raises them.
"""

from __future__ import annotations

from strongroom.archive.errors import ArchiveError


class OfficeError(ArchiveError):
    """Base class for records-office failures."""


class UnknownPolicy(OfficeError):
    """No retention policy has this id or name."""


class InvalidPolicy(OfficeError):
    """A policy field is out of range (duration, unit, start event, action, name)."""


class UnknownHold(OfficeError):
    """No legal hold has this id, or it was already lifted."""


class InvalidHold(OfficeError):
    """A hold lacks its reason, its subject, or has an inverted date range."""


class NothingToExport(OfficeError):
    """The export selection matches no record that still holds content."""


class UnknownCertificate(OfficeError):
    """No destruction certificate has this id."""


class ClockBehind(OfficeError):
    """The clock is earlier than the newest signed tree head: no destruction until it is fixed.

    A Pi has no battery-backed clock; after a power cut it may start in the
    past until NTP answers. Deciding what is "due" on such a clock, and dating
    a certificate before the log it covers, would both be wrong.
    """


class BackupError(Exception):
    """Base class for backup and restore failures."""


class WrongWords(BackupError):
    """The 24 words given do not belong to the box that made this backup."""


class NotABackup(BackupError):
    """The directory holds no Strongroom backup set."""


class BackupCorrupted(BackupError):
    """A backup file is truncated, altered or missing; the message names it."""


class RestoreTargetNotEmpty(BackupError):
    """The new data directory already holds files; restore never overwrites."""
