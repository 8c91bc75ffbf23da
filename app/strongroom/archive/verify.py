"""`strongroom verify`: re-check the whole archive and say what is wrong, where.

Checks, streaming so a million records fit in a Pi's memory:
1. SQLCipher page integrity (`PRAGMA quick_check`; a flipped byte in the file
   fails its page HMAC and surfaces here or at the first read of that page), on
   a reader of its own beside the rest when the caller can open one.
2. Every log leaf: its stored hash is SHA-256(0x00 || leaf_data), indexes are
   contiguous, and the root recomputed from all leaves matches the latest
   signed tree head, whose Ed25519 signature must verify. Every stored
   interior node (what inclusion proofs are built from) is the hash of its
   two children.
3. Every record still holding content (verify_records.py; signatures on two
   worker processes, verify_sign.py): SHA-256(body) is its id and its leaf
   commits to that hash; the device's signature over it verifies; the rows
   the UI shows and searches (messages, receipts, attachments) say what the
   signed body says. Destroyed records are checked through their leaf only.
4. Every audit event and device event recomputes to its leaf, and every
   pairing or revocation the devices table shows is in the log
   (verify_events.py).
5. Every blob decrypts, authenticates chunk by chunk and hashes to its name.
6. No entry names a leaf outside the log, and `conversation_senders` (what
   holds, matters and exports on a person read) holds exactly the
   (conversation, sender) pairs of `messages` (verify_events.py).
7. The conversation index (schema 10: conv_folded and conv_recent, conv_keys.py)
   holds one key per record: counts and sums of ids and dates, index-only reads.

The incremental verify (verify_incremental.py) runs the same checks over what
is new since the last verified head and a slice of the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import sqlcipher3

from strongroom.archive import conv_keys
from strongroom.archive.blobs import BlobStore
from strongroom.archive.db import Connection
from strongroom.archive.losses import check_witness_files, witness_of
from strongroom.archive.store import Archive
from strongroom.archive.verify_events import (
    WHOLE_LOG,
    verify_audit_events,
    verify_blobs,
    verify_conversation_senders,
    verify_device_events,
    verify_log_refs,
)
from strongroom.archive.verify_live import verify_conv_live
from strongroom.archive.verify_records import (
    Progress,
    VerifyReport,
    verify_records,
)
from strongroom.proof.merkle import EMPTY_ROOT, leaf_hash, node_hash
from strongroom.proof.sth import SignedTreeHead, verify_tree_head


class RootAccumulator:
    """Streaming RFC 6962 root: O(log n) memory whatever the number of leaves."""

    def __init__(self) -> None:
        self._frontier: list[tuple[int, bytes]] = []  # (height, hash), heights decreasing
        self.size = 0

    @classmethod
    def seeded(cls, size: int, frontier: list[tuple[int, bytes]]) -> RootAccumulator:
        """Continue a tree of `size` leaves from the roots of the perfect subtrees
        tiling it, (height, hash) largest first (what the log's stored nodes give)."""
        acc = cls()
        acc._frontier = list(frontier)
        acc.size = size
        return acc

    def add(self, leaf: bytes) -> None:
        height, node = 0, leaf
        while self._frontier and self._frontier[-1][0] == height:
            _, left = self._frontier.pop()
            node = node_hash(left, node)
            height += 1
        self._frontier.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        node = self._frontier[-1][1]
        for _, left in reversed(self._frontier[:-1]):
            node = node_hash(left, node)
        return node


def _noop(_stage: str, _done: int, _total: int) -> None:
    return None


def verify_archive(
    conn: Connection,
    blobs: BlobStore,
    box_verify_key: bytes,
    progress: Progress = _noop,
    *,
    witness: SignedTreeHead | None = None,
    page_check: PageCheck | None = None,
) -> VerifyReport:
    """Check everything; `witness` is a head the box signed earlier and kept outside the DB.

    `page_check` runs SQLCipher's page check on a connection of its own, on a
    thread beside the rest (SQLite leaves the GIL while it reads the file); the
    problems it finds come first. Without it the check runs first on `conn`.

    The witness catches what no check inside the file can: a damaged WAL makes
    SQLite drop the last commits on recovery, leaving a shorter archive that is
    consistent with itself. A signed head larger than the log, or whose root
    the log no longer reproduces, names that loss.
    """
    report = VerifyReport()
    # Text that is not UTF-8 (written by someone with the key) must be reported
    # as a mismatch, not abort the whole check as an "unreadable page".
    saved_text_factory = conn.text_factory
    conn.text_factory = _lenient_text
    pages: Future[list[str]] | None = None
    side = ThreadPoolExecutor(1, thread_name_prefix="verify-pages") if page_check else None
    if side is not None and page_check is not None:
        pages = side.submit(page_check)
    try:
        if pages is None:
            for line in quick_check(conn):
                report.problem(line)
        _verify(conn, blobs, box_verify_key, progress, report, witness)
    except sqlcipher3.DatabaseError as exc:
        report.problem(f"database file: unreadable page ({exc}); restore from a backup")
    except Exception as exc:  # a value of the wrong type somewhere: say so, do not crash
        report.problem(f"verify stopped early: {type(exc).__name__}: {exc}")
    finally:
        conn.text_factory = saved_text_factory
        if side is not None:
            side.shutdown(wait=True)
    if pages is not None:
        try:
            report.problems[:0] = pages.result()
        except sqlcipher3.DatabaseError as exc:
            report.problems.insert(0, f"database file: unreadable page ({exc})")
    return report


PageCheck = Callable[[], list[str]]


def quick_check(conn: Connection) -> list[str]:
    """SQLCipher's page check (HMAC of every page) and SQLite's structure check."""
    return [
        f"database file: {line}" for (line,) in conn.execute("PRAGMA quick_check") if line != "ok"
    ]


def page_check_of(archive: Archive) -> PageCheck:
    """quick_check on a reader of its own (for verify_archive's `page_check`)."""

    def check() -> list[str]:
        reader = archive.reader()
        try:
            return quick_check(reader)
        finally:
            reader.close()

    return check


def _lenient_text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _verify(
    conn: Connection,
    blobs: BlobStore,
    box_key: bytes,
    progress: Progress,
    report: VerifyReport,
    witness: SignedTreeHead | None,
) -> None:
    head_row = conn.execute(
        "SELECT tree_size, root_hash, timestamp_ms, signature FROM tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    head = (
        SignedTreeHead(int(head_row[0]), bytes(head_row[1]), int(head_row[2]), bytes(head_row[3]))
        if head_row
        else None
    )
    report.tree_head = head
    if witness is not None and not verify_tree_head(witness, box_key):
        report.problem("log: the kept tree head (tree_head.latest) is not signed by this box")
        witness = None
    _verify_leaves(conn, head, witness, progress, report)
    verify_nodes(conn, report.leaves, report)
    verify_records(conn, progress, report)
    verify_audit_events(conn, report)
    verify_device_events(conn, report)
    verify_blobs(conn, blobs, progress, report)
    accounted = report.records + report.audit_events + report.blobs + report.device_events
    if accounted != report.leaves:
        report.problem(f"log: {report.leaves} leaves but {accounted} archive entries refer to them")
    # A row at a negative index is in no range the checks above read.
    verify_log_refs(conn, report.leaves, report)
    verify_conversation_senders(conn, report)
    verify_conv_live(conn, report)
    for problem in conv_keys.index_problems(conn, report.conversations):
        report.problem(problem)
    if head is None:
        report.problem("log: no signed tree head")
    elif not verify_tree_head(head, box_key):
        report.problem(f"log: the signature of the tree head of size {head.tree_size} is invalid")


def add_leaf(
    acc: RootAccumulator,
    idx: int,
    data: bytes,
    stored: bytes | None,
    head: SignedTreeHead | None,
    witness: SignedTreeHead | None,
    report: VerifyReport,
) -> None:
    """One log leaf, as the full and the incremental verify both check it: its stored
    hash against its data, then the root rebuilt so far against the signed head and
    the witness head when the accumulator reaches their size."""
    computed = leaf_hash(bytes(data))
    if stored is None or bytes(stored) != computed:
        report.problem(f"log leaf {idx}: stored hash does not match its data")
    acc.add(computed)
    if head is not None and acc.size == head.tree_size and acc.root() != head.root_hash:
        report.problem(
            f"log: recomputed root at size {head.tree_size} differs from the signed tree head"
        )
    if witness is not None and acc.size == witness.tree_size and acc.root() != witness.root_hash:
        report.problem(
            f"log: the records under the head the box signed at size {witness.tree_size}"
            " were rewritten"
        )


def _verify_leaves(
    conn: Connection,
    head: SignedTreeHead | None,
    witness: SignedTreeHead | None,
    progress: Progress,
    report: VerifyReport,
) -> None:
    total = int(conn.execute("SELECT count(*) FROM log_leaves").fetchone()[0])
    acc = RootAccumulator()
    expected = 0
    rows = conn.execute(
        "SELECT l.idx, l.leaf_data, n.hash FROM log_leaves l"
        " LEFT JOIN log_nodes n ON n.level = 0 AND n.idx = l.idx ORDER BY l.idx"
    )
    for idx, data, stored in rows:
        if idx != expected:
            report.problem(f"log: leaf {expected} is missing (next is {idx})")
            expected = idx
        add_leaf(acc, idx, data, stored, head, witness, report)
        expected += 1
        if expected % 50_000 == 0:
            progress("log", expected, total)
    report.leaves = acc.size
    if witness is not None and witness.tree_size > acc.size:
        report.problem(
            f"log: the box signed a tree head of size {witness.tree_size} but only {acc.size}"
            " leaves remain: acknowledged records were lost (damaged WAL or database file);"
            " restore from a backup"
        )
    if head is not None and head.tree_size > acc.size:
        report.problem(
            f"log: the signed tree head covers {head.tree_size} leaves, only {acc.size} exist"
        )
    elif head is not None and head.tree_size == 0 and head.root_hash != EMPTY_ROOT:
        report.problem("log: the signed empty tree head has a wrong root")


def verify_nodes(
    conn: Connection, size: int, report: VerifyReport, lo: int = 0, hi: int | None = None
) -> None:
    """Each interior node must hash its two children (streamed level by level).

    Level 0 is checked against leaf_data above; with this, every node a proof
    is built from is tied to the leaves, whose root the tree head signs.
    With [lo, hi) (incremental verify), only the complete nodes of the `size`
    tree whose leaves meet that range: a node across two ranges is checked in
    both, so ranges that tile the log check every node.
    """
    whole = hi is None
    end = size if hi is None else min(hi, size)
    if end <= lo:
        return
    for level in range(1, max(size.bit_length(), 1)):
        count = size >> level
        first = lo >> level
        last = count if whole else min(count, ((end - 1) >> level) + 1)
        if first >= last and not whole:
            break
        children = conn.execute(
            "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level - 1, 2 * first, 2 * last),
        )
        parents = conn.execute(
            "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (level, first, 2**62 if whole else last),
        )
        expected = first
        for idx, stored in parents:
            if idx >= count:
                report.problem(f"log node (level {level}, {idx}): beyond the tree of {size}")
                break
            if idx != expected:
                report.problem(f"log node (level {level}, {expected}) is missing")
                break
            left, right = children.fetchone(), children.fetchone()
            if left is None or right is None or (left[0], right[0]) != (2 * idx, 2 * idx + 1):
                report.problem(f"log nodes at level {level - 1} below node {idx} are missing")
                break
            if bytes(stored) != node_hash(bytes(left[1]), bytes(right[1])):
                report.problem(f"log node (level {level}, {idx}): hash does not match its children")
            expected += 1
        else:
            if expected != last:
                report.problem(f"log node (level {level}, {expected}) is missing")


def verify_open_archive(
    archive: Archive, conn: Connection | None = None, progress: Progress = _noop
) -> VerifyReport:
    """verify_archive with this archive's blobs, box key and kept head, on a reader by default."""
    reader = conn if conn is not None else archive.reader()
    try:
        report = verify_archive(
            reader,
            archive.blobs,
            bytes(archive.signing_key.verify_key),
            progress,
            witness=witness_of(archive),
            page_check=page_check_of(archive),
        )
        # An unreadable kept head, heads the log lost (losses.py).
        check_witness_files(archive, reader, report)
        return report
    finally:
        if conn is None:
            reader.close()


__all__ = [
    "WHOLE_LOG",
    "PageCheck",
    "Progress",
    "RootAccumulator",
    "VerifyReport",
    "page_check_of",
    "quick_check",
    "verify_archive",
    "verify_audit_events",
    "verify_blobs",
    "verify_device_events",
    "verify_nodes",
    "verify_open_archive",
]
