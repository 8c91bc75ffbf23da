"""Erasing records' content while their log leaves stay, so the archive still verifies.

What goes, for each record: the signed body and signature (records), the message
text and sender (messages, and with them the full-text index entries through the
messages_ad trigger), receipt and attachment rows, and every attachment blob no
surviving record still refers to: its key salt is nulled in the database (the
file's key can no longer be derived) and its file is deleted after commit.
The conversation forgets a sender none of its remaining messages names
(`conversation_senders`). What stays: the record's row with its hashes, kind,
dates and log index, marked ``destroyed_at``, and the log leaf that commits to
its hash.

Nothing survives below SQL either (`archive/scrub.py`): the FTS index removes
the deleted rows' entries from its segments at once (its `secure-delete` option,
on for the erasure's transaction only), secure_delete
zeroes what the deletes free, free pages are overwritten with zeros in the
same transaction unless every one is known to be zero already
(`wipe_dirty_free_pages`: releases up to schema 10 merged FTS segments without
zeroing their pages), and
after commit `scrub_storage` checkpoints the WAL into the file and truncates it.
The cost follows what is destroyed and the free pages, not the archive's size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from strongroom.archive import conv_keys
from strongroom.archive.blobs import BlobStore
from strongroom.archive.db import Connection
from strongroom.archive.errors import BlobError
from strongroom.archive.scrub import (
    FTS_SECURE_DELETE_OFF,
    FTS_SECURE_DELETE_ON,
    ScrubIncomplete,
    clear_pending,
    mark_pending,
    pending_marker,
    truncate_wal,
    wipe_dirty_free_pages,
)
from strongroom.archive.store import Archive, Txn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErasedRecord:
    row_id: int
    record_id: bytes
    log_index: int
    kind: str
    content_sha256: bytes
    received_at: int
    sent_at: int
    conversation_id: int


@dataclass(frozen=True)
class ErasedBlob:
    sha256: bytes
    log_index: int
    file_name: str


@dataclass(frozen=True)
class Erasure:
    records: list[ErasedRecord]
    blobs: list[ErasedBlob]


# A conversation's records and its messages' senders, through the conversation index
# (conv_keys; ?1 is the conversation).
_EVERY_KEY = conv_keys.summed("SELECT count(*) FROM {keys} k WHERE k.conversation_id = ?1")
_SENDERS = conv_keys.union(
    "SELECT m.sender FROM {keys} k JOIN messages m ON m.record_id = k.record_id"
    " WHERE k.conversation_id = ?1"
)


def erase_in_txn(txn: Txn, row_ids: Sequence[int]) -> Erasure:
    """Erase the content of these records (already destroyed ones are skipped)."""
    conn = txn.conn
    # For this transaction only, FTS5 removes a deleted row's entries from its
    # segments instead of writing delete markers over them (the words would stay in
    # the index until a merge); left on, it made every search read more pages
    # (test_archive_search_cost). Rolled back with the rest if the erasure fails.
    conn.execute(FTS_SECURE_DELETE_ON)
    erased: list[ErasedRecord] = []
    blob_candidates: set[bytes] = set()
    conversations: set[int] = set()
    for row_id in row_ids:
        row = conn.execute(
            "SELECT record_id, log_index, kind, content_sha256, received_at, sent_at,"
            " conversation_id FROM records WHERE id = ? AND destroyed_at IS NULL",
            (row_id,),
        ).fetchone()
        if row is None:
            continue
        for (sha,) in conn.execute(
            "SELECT blob_sha256 FROM attachments WHERE record_id = ?", (row_id,)
        ):
            blob_candidates.add(bytes(sha))
        # Deleting the messages row fires messages_ad, which removes its FTS entry.
        conn.execute("DELETE FROM messages WHERE record_id = ?", (row_id,))
        conn.execute("DELETE FROM attachments WHERE record_id = ?", (row_id,))
        conn.execute("DELETE FROM receipts WHERE record_id = ?", (row_id,))
        conn.execute(
            "UPDATE records SET body = NULL, signature = NULL, destroyed_at = ? WHERE id = ?",
            (txn.at_ms, row_id),
        )
        conversations.add(int(row[6]))
        erased.append(
            ErasedRecord(
                row_id=row_id,
                record_id=bytes(row[0]),
                log_index=int(row[1]),
                kind=str(row[2]),
                content_sha256=bytes(row[3]),
                received_at=int(row[4]),
                sent_at=int(row[5]),
                conversation_id=int(row[6]),
            )
        )
    blobs: list[ErasedBlob] = []
    for sha in sorted(blob_candidates):
        still_used = conn.execute(
            "SELECT 1 FROM attachments WHERE blob_sha256 = ? LIMIT 1", (sha,)
        ).fetchone()
        if still_used is not None:
            continue
        row = conn.execute(
            "SELECT log_index, file_name FROM blobs WHERE sha256 = ? AND destroyed_at IS NULL",
            (sha,),
        ).fetchone()
        if row is None:
            continue
        conn.execute(
            "UPDATE blobs SET key_salt = NULL, destroyed_at = ? WHERE sha256 = ?",
            (txn.at_ms, sha),
        )
        blobs.append(ErasedBlob(sha, int(row[0]), str(row[1])))
    _tidy_conversations(conn, conversations)
    if erased:
        wipe_dirty_free_pages(conn, txn.at_ms)
    conn.execute(FTS_SECURE_DELETE_OFF)
    return Erasure(erased, blobs)


def _tidy_conversations(conn: Connection, conversations: set[int]) -> None:
    """Nothing left of a conversation: its contact's name goes. A sender with no
    message left in it is no longer one of its persons (schema 6)."""
    for conversation_id in conversations:
        # All its records (both tables of the conversation index, conv_keys) destroyed
        # (records_destroyed): counted in indexes, no record row read.
        conn.execute(
            f"UPDATE conversations SET peer = '' WHERE id = ?1 AND {_EVERY_KEY}"  # noqa: S608
            " = (SELECT count(*) FROM records WHERE conversation_id = ?1"
            " AND destroyed_at IS NOT NULL)",
            (conversation_id,),
        )
        conn.execute(
            "DELETE FROM conversation_senders WHERE conversation_id = ?1 AND sender NOT IN"  # noqa: S608
            f" ({_SENDERS})",
            (conversation_id,),
        )


def delete_blob_files(store: BlobStore, blobs: Sequence[ErasedBlob]) -> list[str]:
    """Delete erased blobs' files (after commit); return the names that could not be."""
    failed: list[str] = []
    for blob in blobs:
        try:
            store.delete(blob.file_name)
        except (OSError, BlobError):
            # The salt is already gone, so the file is unreadable; a later run retries.
            failed.append(blob.file_name)
    return failed


def scrub_storage(archive: Archive, *, attempts: int = 50) -> bool:
    """Checkpoint the committed erasure into the file and truncate the WAL.

    Runs on its own connection so it waits politely for the writer instead of
    sharing its connection across threads. Returns False when a long reader (an
    export, a backup, a phone's restore) kept the WAL busy for `attempts` tenths
    of a second: the destroyed pages then stay in the WAL and in archive.db, the
    scrub is marked pending on disk, and `finish_pending_scrub` completes it (the
    running box tries every 30 s). The destruction itself is committed either way.
    """
    conn = archive.reader()
    try:
        # A background checkpoint under way finishes first (it holds the lock): the
        # WAL is then nearly all copied and TRUNCATE finds it free.
        with archive.checkpoint_lock:
            truncate_wal(conn, attempts=attempts)
    except ScrubIncomplete:
        mark_pending(archive.path)
        log.warning("destruction committed; its old pages stay on disk until the readers let go")
        return False
    finally:
        conn.close()
    clear_pending(archive.path)
    return True


def finish_pending_scrub(archive: Archive) -> bool | None:
    """Finish a scrub a long reader held up: None if none was pending, else whether
    it is done now (one short try: the caller asks again later)."""
    if not pending_marker(archive.path).exists():
        return None
    done = scrub_storage(archive, attempts=3)
    if done:
        log.info("a destruction's pending scrub is complete")
    return done
