"""Leave no old bytes below SQL after a destruction, at a cost that does not grow
with the archive.

Two places can keep a destroyed record's bytes once its rows are gone:
- **Free pages.** `secure_delete = ON` zeroes what a delete frees. Releases up to
  schema 10 merged the per-batch FTS feed's segments with `secure_delete = FAST`,
  so a free page may still hold an old segment naming a record destroyed later.
  `wipe_free_pages` allocates every free page to a table of zeros and drops it
  with zeroing on: each free page is written, and only the free pages (a VACUUM
  rewrote the whole file, and with `temp_store = MEMORY` held a copy of it in RAM:
  ~1 GiB at 1M records, more than a Pi has at 5M). Every free page was wiped at
  each destruction, including the ~25,000 already-zero pages migration 10 left at
  5M: ~196 MiB written per night until growth reused them. Now the FTS feed (and
  its idle merge, archive/fts_merge.py) zeroes what it frees too, and
  `wipe_dirty_free_pages` wipes once, the first destruction on an archive no
  FAST-feeding release can open (schema ZEROED_FREES_FROM_SCHEMA onwards: an older
  release refuses a newer schema), and notes it in `settings`; from then on every
  free page is zero when freed (the only other frees without zeroing: the fold's
  conversation keys, which a destroyed record keeps anyway, and the wipe's own
  zeros) and a destruction writes none of them again.
- **The WAL.** Old page images stay in `archive.db-wal` until a checkpoint copies
  the new ones over them and the file is truncated (`truncate_wal`). Until then
  `archive.db` itself still holds the old pages. A reader in the middle of a long
  read (an export, a backup, a phone's restore) keeps the checkpoint from
  finishing: the scrub is then marked pending (`scrub.pending` beside the archive)
  and the running box finishes it as soon as the readers let it
  (`finish_pending_scrub`, from its once-a-second tick, every 30 s).

The FTS index itself forgets a deleted row at once while its `secure-delete`
option is on, which the erasure sets for its own transaction only: left on, every
search read more index pages. Before, each destruction rewrote the whole index
('optimize') and VACUUMed the whole file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from strongroom.archive.db import Connection, schema_version
from strongroom.archive.errors import ArchiveError
from strongroom.utc import iso_utc

# What `systemctl status` and `strongroom status` say while a scrub is pending.
SCRUB_PENDING_STATUS = (
    "destroyed records not yet wiped from free space and WAL (a long read holds the file;"
    " retried every 30 s)"
)

# Pages allocated per row of zeros: bounds the memory a zeroblob takes (4 MiB).
_PAGES_PER_ROW = 1024


FTS_SECURE_DELETE_ON = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1)"
FTS_SECURE_DELETE_OFF = "INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 0)"


class ScrubIncomplete(ArchiveError):
    """The WAL could not be checkpointed and truncated (a reader held it too long)."""


def _free_pages(conn: Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def wipe_free_pages(conn: Connection) -> int:
    """Overwrite every free page with zeros, inside the caller's transaction.

    Returns how many free pages there were. The connection must have
    `secure_delete = ON` (every archive connection has; it is ON again on return):
    the rows of zeros are freed without zeroing them a second time.
    """
    if not conn.in_transaction:
        raise ArchiveError("wipe_free_pages runs inside a write transaction")
    if conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
        raise ArchiveError("wipe_free_pages needs secure_delete = ON")
    free = left = _free_pages(conn)
    if free == 0:
        return 0
    usable = int(conn.execute("PRAGMA page_size").fetchone()[0]) - 128
    conn.execute("CREATE TABLE scrub_fill (zeros BLOB NOT NULL)")
    # SQLite takes pages from the free list before it grows the file, so rows of
    # zeros spilling into overflow pages take every free page (trunk pages last).
    while left > 0:
        pages = min(left, _PAGES_PER_ROW)
        conn.execute("INSERT INTO scrub_fill VALUES (zeroblob(?))", (pages * usable,))
        left = _free_pages(conn)
    # A row at a time: one DROP would keep each page's old image in its statement
    # journal (temp_store = MEMORY) until it ends: +164 MiB of RSS for the 25,000
    # free pages a 5M archive had after migration 10. And without zeroing again: the
    # pages already hold the zeros just written (and their 4-byte overflow links),
    # so zeroing them as they are freed wrote each one a second time.
    rows = [rowid for (rowid,) in conn.execute("SELECT rowid FROM scrub_fill")]
    conn.execute("PRAGMA secure_delete = FAST")
    try:
        for rowid in rows:
            conn.execute("DELETE FROM scrub_fill WHERE rowid = ?", (rowid,))
        conn.execute("DROP TABLE scrub_fill")
    finally:
        conn.execute("PRAGMA secure_delete = ON")
    return free


# The `settings` row saying every free page is zero: written with the full wipe, in
# the destruction's transaction, at a schema no release that freed FTS pages
# without zeroing (schema 10 and before) can open. A `--rollback` to such a release
# is refused once the archive is at this schema, so no free page written since can
# hold content.
FREE_PAGES_ZEROED = "scrub.free_pages_zeroed"
ZEROED_FREES_FROM_SCHEMA = 11


def free_pages_known_zero(conn: Connection) -> bool:
    """Every free page is zero: a full wipe since the archive reached
    ZEROED_FREES_FROM_SCHEMA, and every write since zeroed what it freed."""
    if schema_version(conn) < ZEROED_FREES_FROM_SCHEMA:
        return False
    row = conn.execute("SELECT 1 FROM settings WHERE key = ?", (FREE_PAGES_ZEROED,)).fetchone()
    return row is not None


def wipe_dirty_free_pages(conn: Connection, at_ms: int) -> int:
    """What a destruction calls, in its transaction: `wipe_free_pages` unless every
    free page is known to be zero already (`free_pages_known_zero`). Returns the
    pages wiped (0 when none needed it)."""
    if free_pages_known_zero(conn):
        return 0
    wiped = wipe_free_pages(conn)
    if schema_version(conn) >= ZEROED_FREES_FROM_SCHEMA:
        conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
            (FREE_PAGES_ZEROED, str(int(at_ms))),
        )
    return wiped


def truncate_wal(conn: Connection, *, attempts: int = 50, pause_s: float = 0.1) -> None:
    """Checkpoint every WAL frame into the file and truncate the WAL to zero bytes.

    A reader in the middle of a read keeps SQLite from finishing (busy); it is
    asked again for about `attempts * pause_s` seconds before giving up loudly. The
    connection's busy timeout is shortened meanwhile: a TRUNCATE checkpoint waits
    on it for the readers, 30 s per attempt with the archive's setting.
    """
    (timeout_ms,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {int(pause_s * 1000)}")
    try:
        for _ in range(attempts):
            busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if int(busy) == 0:
                return
            time.sleep(pause_s)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    raise ScrubIncomplete(
        "the WAL is still in use; destroyed pages remain in it until the next checkpoint"
    )


def pending_marker(archive_path: Path) -> Path:
    """The file saying a destruction's scrub has not reached the disk yet."""
    return archive_path.with_name("scrub.pending")


def pending_since_ms(archive_path: Path) -> int | None:
    """When a destruction's scrub was left pending (Unix ms), or None if none is: the
    dashboard, the Integrity and certificates pages and `strongroom status` say so
    until the box has finished it."""
    try:
        return int(pending_marker(archive_path).stat().st_mtime * 1000)
    except FileNotFoundError:
        return None


def scrub_status(archive_path: Path) -> dict[str, object] | None:
    """The pending scrub as `strongroom status` shows it (JSON), None if none is."""
    since = pending_since_ms(archive_path)
    if since is None:
        return None
    return {"since_ms": since, "since_utc": iso_utc(since), "notice": SCRUB_PENDING_STATUS}


def mark_pending(archive_path: Path) -> None:
    """Say on disk that a scrub is pending, once: its time is the "since" the pages
    show, so a later failed retry must not rewrite it (exclusive create)."""
    marker = pending_marker(archive_path)
    try:
        out = marker.open("x")
    except FileExistsError:
        return
    with out:
        out.write("a destruction's old pages are still in the WAL and archive.db\n")
        out.flush()
        os.fsync(out.fileno())
    directory = os.open(marker.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def clear_pending(archive_path: Path) -> None:
    pending_marker(archive_path).unlink(missing_ok=True)
