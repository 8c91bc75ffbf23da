"""Leave no old bytes below SQL after a destruction, at a cost that does not grow
with the archive.

Two places can keep a destroyed record's bytes once its rows are gone:
- **Free pages.** `secure_delete = ON` zeroes what a delete frees, but the
  per-batch FTS feed merges segments with `secure_delete = FAST` (zeroing the
  freed segments would write every such page once more, SD-card wear), so a free
  page may still hold an old segment naming a record destroyed later.
  `wipe_free_pages` allocates every free page to a table of zeros and drops it
  with zeroing on: each free page is written, and only the free pages (a VACUUM
  rewrote the whole file, and with `temp_store = MEMORY` held a copy of it in RAM:
  ~1 GiB at 1M records, more than a Pi has at 5M).
- **The WAL.** Old page images stay in `archive.db-wal` until a checkpoint copies
  the new ones over them and the file is truncated (`truncate_wal`).

The FTS index itself forgets a deleted row at once when its `secure-delete`
option is set (schema 10); an archive without it needs the whole-index
'optimize' (`fts_forgets_at_once`).
"""

from __future__ import annotations

import time

from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveError

# Pages allocated per row of zeros: bounds the memory a zeroblob takes (4 MiB).
_PAGES_PER_ROW = 1024


class ScrubIncomplete(ArchiveError):
    """The WAL could not be checkpointed and truncated (a reader held it too long)."""


def fts_forgets_at_once(conn: Connection) -> bool:
    """Whether the FTS index removes a deleted row's entries itself (secure-delete)."""
    row = conn.execute("SELECT v FROM messages_fts_config WHERE k = 'secure-delete'").fetchone()
    return row is not None and int(row[0]) != 0


def wipe_free_pages(conn: Connection) -> int:
    """Overwrite every free page with zeros, inside the caller's transaction.

    Returns how many free pages there were. The connection must have
    `secure_delete = ON` (every archive connection has): the drop zeroes the
    pages as it frees them again.
    """
    if not conn.in_transaction:
        raise ArchiveError("wipe_free_pages runs inside a write transaction")
    if conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
        raise ArchiveError("wipe_free_pages needs secure_delete = ON")
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if free == 0:
        return 0
    usable = int(conn.execute("PRAGMA page_size").fetchone()[0]) - 128
    conn.execute("CREATE TABLE scrub_fill (zeros BLOB NOT NULL)")
    # SQLite takes pages from the free list before it grows the file, so rows of
    # zeros spilling into overflow pages take every free page (trunk pages last).
    while conn.execute("PRAGMA freelist_count").fetchone()[0] > 0:
        left = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        pages = min(left, _PAGES_PER_ROW)
        conn.execute("INSERT INTO scrub_fill VALUES (zeroblob(?))", (pages * usable,))
    conn.execute("DROP TABLE scrub_fill")
    return free


def truncate_wal(conn: Connection, *, attempts: int = 50, pause_s: float = 0.1) -> None:
    """Checkpoint every WAL frame into the file and truncate the WAL to zero bytes.

    A reader in the middle of a read keeps SQLite from finishing (busy); it is
    asked again for up to `attempts * pause_s` seconds before giving up loudly.
    """
    for _ in range(attempts):
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if int(busy) == 0:
            return
        time.sleep(pause_s)
    raise ScrubIncomplete(
        "the WAL is still in use; destroyed pages remain in it until the next checkpoint"
    )
