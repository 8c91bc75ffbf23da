"""The archive: one SQLCipher file, encrypted blobs beside it, and the log.

All writes go through `Archive.write_batch`, which runs a list of write
operations in ONE durable transaction (group commit). Each operation runs in
its own savepoint, so a rejected record never takes the batch down with it
(a batch made only of records shares one savepoint, and runs again op by op
if one of them is rejected: batch_ops.py).
At the end of the batch the new log leaves are added to the Merkle tree and a
fresh signed tree head is stored, in the same transaction: the log and the
data can never disagree, whatever moment the power goes.

The writer connection is used by one thread at a time (the group committer,
or a CLI command); readers open their own connections with `reader()`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlcipher3
from nacl.signing import SigningKey

from strongroom.archive.batch_ops import run_ops
from strongroom.archive.blobs import BlobStore
from strongroom.archive.checkpointer import Checkpointer, WalIndex
from strongroom.archive.conv_keys import Fold, Folder, has_lsm
from strongroom.archive.db import Connection, MigrationHook, connect, open_archive_db
from strongroom.archive.errors import ArchiveError, StorageFull
from strongroom.archive.fts_merge import FtsIndex
from strongroom.archive.kept_head import WITNESS_FILE, KeptHead, read_kept_head
from strongroom.archive.lost_heads import keep_if_lost
from strongroom.archive.nodes import SharedProofs, SqlNodeStore
from strongroom.archive.tree_heads import (
    Clock,
    batch_time_ms,
    latest_tree_head,
    now_ms,
    reader_log,
    sign_head,
)
from strongroom.archive.txn import Txn, WriteOp, WriteOpOf  # re-exported: callers use store
from strongroom.proof.merkle import MerkleLog, TreeSizeError
from strongroom.proof.sth import SignedTreeHead

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """Per-operation results (a value or the exception it raised) and the new head."""

    results: list[Any]
    tree_head: SignedTreeHead | None


def _is_disk_full(exc: BaseException) -> bool:
    # Only SQLITE_FULL: a "disk I/O error" is a failing card, not a full one,
    # and must not be reported as "retry later".
    return "database or disk is full" in str(exc).lower()


class Archive:
    def __init__(
        self,
        path: Path,
        archive_key: bytes,
        blob_store: BlobStore,
        signing_key: SigningKey,
        *,
        clock: Clock = time.time,
        on_migrate: MigrationHook | None = None,
    ) -> None:
        self.path = path
        self._key = archive_key
        self.blobs = blob_store
        self.signing_key = signing_key
        self.clock = clock
        self.conn = open_archive_db(path, archive_key, on_migrate)
        self._text_once = message_text_once(self.conn)
        # The full-text index's per-batch feed and idle merge (fts_merge.py).
        self._fts = FtsIndex(self.conn, text_once=self._text_once)
        self._conv_lsm = has_lsm(self.conn)
        self._folder = Folder()  # the conversation index's fold (fold_if_due)
        self._nodes = SqlNodeStore(self.conn)
        self.log = MerkleLog(self._nodes)
        self._write_lock = threading.Lock()
        # Held by whoever checkpoints (the background checkpointer, `checkpoint`, an
        # erasure's scrub): one waits for the other rather than finding the WAL busy.
        self.checkpoint_lock = threading.Lock()
        # The wal-index header the checkpointer reads: one descriptor, closed after
        # self.conn (checkpointer.py: closing it earlier drops SQLite's locks).
        self.wal_index = WalIndex(path)
        # The newest head, also kept outside the database (kept_head.py); opened
        # (created, or converted from the old format) before any batch writes it.
        # Before any write (this open's first batch would write a smaller head over
        # the kept one): a kept head the log lost is copied aside (lost_heads.py).
        # The kept head is read first: it is written after its COMMIT, so a box
        # committing beside this process (a CLI command) cannot make it look ahead of
        # a database head read after it; the log's view is loaded after both.
        newest = self._keep_if_lost(read_kept_head(self.witness_path))
        self.kept_head = KeptHead(self.witness_path)
        self.kept_head.before_reopen = self._keep_if_lost  # a retry after a failed open
        self.kept_head.open(newest)
        if self.latest_tree_head() is None:
            # A new archive starts with a signed empty tree, so even an empty
            # box can prove what it held (nothing) and when.
            try:
                self.write_batch([])
            except BaseException:  # e.g. a full disk: do not leak the connection
                self.kept_head.close()
                self.conn.close()
                raise

    @classmethod
    def open(
        cls,
        data_dir: Path,
        archive_key: bytes,
        blob_key: bytes,
        signing_key: SigningKey,
        *,
        clock: Clock = time.time,
        on_migrate: MigrationHook | None = None,
    ) -> Archive:
        """Open (and migrate: possibly minutes on a Pi, see db.migrate) the archive."""
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        blobs = BlobStore(data_dir / "blobs", blob_key)
        return cls(
            data_dir / "archive.db",
            archive_key,
            blobs,
            signing_key,
            clock=clock,
            on_migrate=on_migrate,
        )

    def reader(self) -> Connection:
        """A separate connection for reads (web UI, history), safe in another thread."""
        return connect(self.path, self._key)

    def close(self) -> None:
        # Under the write lock: a batch or a proof still running on the writer
        # connection finishes first (closing it under a statement would crash).
        with self._write_lock:
            self.kept_head.close()
            self.conn.close()
            self.wal_index.close()

    # -- writing -------------------------------------------------------------

    def write_batch(
        self, ops: Sequence[WriteOp], *, sign: bool = True, fold: bool = True
    ) -> BatchResult:
        """Run ops in one durable transaction; return once it is on disk.

        fold: then fold the conversation index if due (`fold_if_due`), in a transaction
        of its own; the group committer passes False and folds after sending the acks.

        An op that raises ArchiveError (e.g. RecordRejected) is rolled back
        alone and its exception becomes its result. Any other failure rolls
        back the whole batch and is raised (StorageFull when the disk is full).
        """
        with self._write_lock:
            return self._write_batch_locked(ops, sign, fold)

    def _write_batch_locked(self, ops: Sequence[WriteOp], sign: bool, fold: bool) -> BatchResult:
        conn = self.conn
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            self._catch_up_with_other_writers()
            txn = Txn(
                conn, self.log.size, batch_time_ms(conn, self.clock), text_once=self._text_once
            )
            txn.conv_lsm = self._conv_lsm
            # One savepoint per batch of records, per op when one is rejected (batch_ops).
            results = run_ops(conn, txn, ops)
            if ops:
                self._fts.feed(conn)  # one FTS5 segment per batch, in its transaction
            head = None
            if txn.leaves:
                self.log.append_many(txn.leaves)
            if txn.leaves or (sign and latest_tree_head(conn) is None):
                head = sign_head(conn, self.signing_key, self.log, txn.at_ms)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._nodes.forget()
            self.log.reload()
            if isinstance(exc, sqlcipher3.OperationalError | sqlite3.OperationalError):
                if _is_disk_full(exc):
                    raise StorageFull("the disk is full; nothing was written") from exc
            raise
        if head is not None:
            # Before the caller acks (the committer resolves its waiters after this
            # returns): one pwrite in place, no rename; flushed off the ack path. The
            # batch is durable: a failure here must not make a caller replay it
            # (review F5); the kept head's own status says what went wrong.
            try:
                self.kept_head.keep(head)
            except Exception:
                log.exception("the kept head was not written after a commit")
        if fold and ops:
            # No ack waits on this thread: the whole fold, step after step.
            while self._fold_locked(None) is not None and self.folding:
                pass
        return BatchResult(results, head)

    # -- the conversation index's fold ------------------------------------------

    def fold_if_due(self, at: int | None = None) -> Fold | None:
        """One step of the conversation index's fold, in a transaction of its own
        (conv_keys.Folder: it starts once `at`, FOLD_AT, keys wait). The group
        committer calls it after sending a batch's acks (review L7), once per commit
        and again while no push waits; a failed step rolls back whole."""
        with self._write_lock:
            return self._fold_locked(at)

    @property
    def folding(self) -> bool:
        """A fold is under way: `fold_if_due` has more steps to run."""
        return self._folder.after is not None

    @property
    def last_fold(self) -> Fold | None:
        """The newest fold step (benchmarks and tests report it)."""
        return self._folder.last

    @property
    def fts_merge_due(self) -> bool:
        return self._fts.merge_due

    def merge_fts_if_due(self, yield_to: Callable[[], bool] | None = None) -> bool:
        """One step of the full-text index's idle merge (fts_merge.py); True while due.
        With `yield_to`, the step gives way as soon as that returns True (a push is
        queued); `fts_merge_yielded` says whether it rolled back."""
        with self._write_lock:
            return self._fts.merge_if_due(self.conn, yield_to)

    @property
    def fts_merge_yielded(self) -> bool:
        return self._fts.yielded

    def _fold_locked(self, at: int | None) -> Fold | None:
        return self._folder.step(self.conn, at) if self._conv_lsm else None

    def _keep_if_lost(self, kept: SignedTreeHead | None) -> SignedTreeHead | None:
        """Keep `kept` aside if the log lost it (lost_heads.py); the database's newest head.

        `kept` is read before the database's head, and the log's view loaded after
        both: a head kept by another process after its COMMIT can never look ahead."""
        newest = latest_tree_head(self.conn)
        box_key = bytes(self.signing_key.verify_key)
        keep_if_lost(self.path.parent, kept, newest, reader_log(self.conn), box_key)
        return newest

    # A copy of the newest signed head outside the database file: how verify
    # notices commits a damaged WAL dropped. What it guarantees: kept_head.py.
    @property
    def witness_path(self) -> Path:
        return self.path.parent / WITNESS_FILE

    def witness_head(self) -> SignedTreeHead | None:
        return read_kept_head(self.witness_path)

    def _catch_up_with_other_writers(self) -> None:
        """Another process (a CLI command) may have appended to the log since our last batch.

        Under BEGIN IMMEDIATE nobody else can write, so the newest leaf index is
        final: reload the in-memory tree edge if it moved (cheap primary-key lookup).
        """
        row = self.conn.execute("SELECT max(idx) FROM log_leaves").fetchone()
        size = 0 if row[0] is None else int(row[0]) + 1
        if size != self.log.size:
            self._nodes.forget()
            self.log.reload()

    def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file now (PASSIVE: never waits for readers).

        Returns (WAL frames, frames copied). Otherwise the writer checkpoints once
        the WAL reaches db.WAL_AUTOCHECKPOINT_PAGES, or, while a group committer
        runs, its background checkpointer does (archive/checkpointer.py).
        """
        # The checkpoint lock first (one order everywhere, checkpointer.py): a scrub
        # holding it for seconds must not find the writes already held off.
        with self.checkpoint_lock, self._write_lock:
            row = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[1]), int(row[2])

    def checkpointer(self) -> Checkpointer:
        """A background checkpointer for this archive (the group committer runs one)."""
        return Checkpointer(
            self.path, self._key, self.checkpoint_lock, self._write_lock, self.wal_index
        )

    def set_autocheckpoint(self, pages: int) -> None:
        """The WAL size at which the writer connection checkpoints on the commit path."""
        with self._write_lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(pages)}")

    def write(self, op: WriteOpOf[T]) -> T:
        """Run a single op in its own transaction; re-raise its exception."""
        result = self.write_batch([op]).results[0]
        if isinstance(result, ArchiveError):
            raise result
        return result  # type: ignore[no-any-return]

    # -- reading the log -------------------------------------------------------

    def latest_tree_head(self, conn: Connection | None = None) -> SignedTreeHead | None:
        """The newest signed head, read on `conn` or (under the write lock) on the writer.

        Unlocked, a read on the writer connection from another thread would run
        inside a batch in progress and could see a head that batch then rolls back.
        """
        if conn is not None:
            return latest_tree_head(conn)
        with self._write_lock:
            return latest_tree_head(self.conn)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        with self._write_lock:
            return self.log.inclusion_proof(index, tree_size)

    def inclusion_proofs(self, indices: Sequence[int], tree_size: int) -> list[list[bytes]]:
        """`inclusion_proof` of each index against one tree size, sharing their common work.

        A group commit's new leaves are neighbours on the tree's right edge: their
        paths share most nodes, computed once here instead of once per leaf.
        """
        with self._write_lock:
            if not 0 <= tree_size <= self.log.size:
                raise TreeSizeError(f"tree size {tree_size} is outside 0..{self.log.size}")
            shared = SharedProofs(self._nodes, tree_size)
            return [shared.proof(index) for index in indices]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        with self._write_lock:
            return self.log.consistency_proof(old_size, new_size)


def message_text_once(conn: Connection) -> bool:
    """Migration 8 onwards; before it (a test building an old archive), text in messages."""
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(messages)")}
    return "text_at" in columns


__all__ = [
    "Archive",
    "ArchiveError",
    "BatchResult",
    "Txn",
    "WriteOp",
    "WriteOpOf",
    "latest_tree_head",
    "now_ms",
    "reader_log",
]
