"""The one box factory below the web and peer layers: a data directory, the box's
identity from real 24-word entropy, and its SQLCipher archive.

From real entropy, so a backup restores under the keys the same words derive,
and a child process given the entropy opens the same archive. `box.archive` is
the box's own writer (opened on first use, with the records-office tables);
`box.open()` is another, independent handle the caller closes (what a second
process or a restarted box would have).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from strongroom.archive import writes
from strongroom.archive.store import Archive
from strongroom.identity import BoxKeys, derive_box_keys
from strongroom.office.migrations import ensure_office_schema
from support.clock import Clock

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
T0 = 1_600_000_000_000  # 2020-09-13, in ms: far enough back for any retention policy


class _ClockMs:
    """`box.clock_ms[0]`: the box's clock in milliseconds, to read or set (`+= 5000`)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __getitem__(self, index: int) -> int:
        if index != 0:
            raise IndexError(index)
        return self._clock.now_ms()

    def __setitem__(self, index: int, value: int) -> None:
        if index != 0:
            raise IndexError(index)
        self._clock.now = value / 1000


@dataclass
class ArchiveBox:
    data_dir: Path
    entropy: bytes
    clock: Clock = field(default_factory=Clock)  # the wall clock unless given
    _archive: Archive | None = field(default=None, init=False, repr=False)

    @property
    def clock_ms(self) -> _ClockMs:
        return _ClockMs(self.clock)

    @cached_property
    def keys(self) -> BoxKeys:
        return derive_box_keys(self.entropy)

    def open(self) -> Archive:
        """A new handle on the archive, on the box's clock; the caller closes it."""
        keys = self.keys
        return Archive.open(
            self.data_dir, keys.archive_key, keys.blob_key, keys.signing_key, clock=self.clock
        )

    @contextlib.contextmanager
    def opened(self) -> Iterator[Archive]:
        archive = self.open()
        try:
            yield archive
        finally:
            archive.close()

    @property
    def archive(self) -> Archive:
        """The box's own open archive, with the records-office tables."""
        if self._archive is None:
            self._archive = self.open()
            ensure_office_schema(self._archive.conn)
        return self._archive

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def reader_scalar(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, read on a fresh reader connection."""
        conn = self.archive.reader()
        try:
            return conn.execute(sql, args).fetchone()[0]
        finally:
            conn.close()


def open_box(data_dir: Path, entropy: bytes, now_ms: int = T0) -> ArchiveBox:
    """The box of these words in `data_dir`, its archive open, its clock stopped at `now_ms`."""
    box = ArchiveBox(data_dir, entropy, Clock(now_ms / 1000))
    box.archive
    return box


def new_box(tmp_path: Path, name: str = "data") -> ArchiveBox:
    """A new box (fresh entropy) in tmp_path/name, its clock stopped at T0."""
    return open_box(tmp_path / name, os.urandom(32))


def upload_blob(archive: Archive, data: bytes) -> tuple[bytes, str]:
    """Store `data` as a phone's finished upload would be: encrypted, complete, registered
    in the log. Returns its SHA-256 and the file name the blob store gave it."""
    sha = hashlib.sha256(data).digest()
    location = archive.blobs.new_location()
    upload = archive.blobs.start_upload(location, len(data), sha)
    upload.write(data)
    upload.finish()
    archive.blobs.complete(upload, location)
    archive.write(writes.register_blob(sha, len(data), location))
    return sha, location.file_name
