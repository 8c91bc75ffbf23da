"""Archive failures a caller can act on."""


class ArchiveError(Exception):
    """Base class for archive failures."""


class WrongArchiveKey(ArchiveError):
    """The database could not be decrypted with the key we were given."""


class SchemaTooNew(ArchiveError):
    """The file was written by a newer Strongroom; we never downgrade."""


class RecordRejected(ArchiveError):
    """A record from outside failed validation; nothing was written."""


class StorageFull(ArchiveError):
    """The disk is full: nothing was committed, the caller may retry later."""


class ArchiveClosed(ArchiveError):
    """The box is stopping: no new reads or writes start."""


class BlobError(ArchiveError):
    """An attachment blob is missing, truncated or does not match its hash."""


class SchemaMigrationFailed(ArchiveError):
    """A schema migration would leave the archive inconsistent; it was rolled back."""
