"""Verify's report, and its check of every record: hash, device signature, log
leaf, and the rows the UI shows.

The Ed25519 signature checks run on two workers (processes for a big run,
verify_sign.py says why), a chunk of records ahead of the main thread, which
reads the rows and checks everything else.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlcipher3

from strongroom.archive import conv_keys
from strongroom.archive.db import Connection
from strongroom.archive.errors import RecordRejected
from strongroom.archive.record import Record, leaf_data, parse_stored_record
from strongroom.archive.schema import MESSAGE_TEXT
from strongroom.archive.verify_sign import Pending, SignatureJob, SignaturePool, Signed
from strongroom.proof.sth import SignedTreeHead

Progress = Callable[[str, int, int], None]


@dataclass
class VerifyReport:
    leaves: int = 0
    records: int = 0
    destroyed: int = 0
    blobs: int = 0
    audit_events: int = 0
    device_events: int = 0
    # Sum of conv_keys.conversation_term over the records read (the full verify's pass).
    conversations: int = 0
    tree_head: SignedTreeHead | None = None
    problems: list[str] = field(default_factory=list)
    # What verify says beside the problems, which do not fail it: an acknowledged loss,
    # a kept head the box cannot write (losses.py).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)


@contextmanager
def guarded(report: VerifyReport, what: str) -> Iterator[None]:
    """Check one entry; a malformed entry is named and the rest still checked."""
    try:
        yield
    except sqlcipher3.DatabaseError:
        raise
    except Exception as exc:
        report.problem(f"{what}: malformed entry ({type(exc).__name__}: {exc})")


def _derived_rows_problem(derived: Sequence[Any], record: Record) -> str | None:
    """What the UI shows of a record must be what the device signed."""
    signed: tuple[object, ...]
    if record.kind in ("message", "edit", "deletion"):
        present, row = derived[0], derived[1:7]
        signed = (
            record.direction,
            record.sender,
            record.text,
            record.sent_at,
            record.ref,
            int(record.kind == "deletion"),
        )
        table = "message"
    elif record.kind == "receipt":
        present, row = derived[7], derived[8:11]
        signed = (record.ref, record.receipt, record.sent_at)
        table = "receipt"
    else:
        blob = record.blob
        present, row = derived[11], derived[12:17]
        signed = (
            record.ref,
            None if blob is None else blob.sha256,
            None if blob is None else blob.size,
            None if blob is None else blob.name,
            None if blob is None else blob.mime,
        )
        table = "attachment"
    if present is None:
        return f"its {table} row is missing"
    stored = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
    if stored != signed:
        return f"its {table} row differs from the signed record"
    return None


def _check_derived(
    report: VerifyReport,
    what: str,
    derived: Sequence[Any],
    body: bytes,
    signature: bytes,
    stored: tuple[object, ...],
) -> None:
    try:
        # Authentic bytes (hash and device signature checked before): the fast parse.
        record = parse_stored_record(body, signature, max_blob_size=2**62)
    except RecordRejected as exc:
        report.problem(f"{what}: the signed body is not a valid record ({exc})")
        return
    if stored != (record.kind, record.client_id, record.sent_at, record.conversation):
        report.problem(f"{what}: its kind, id, date or conversation differs from the signed record")
    problem = _derived_rows_problem(derived, record)
    if problem is not None:
        report.problem(f"{what}: {problem}")


def check_leaf(
    report: VerifyReport, index: int, stored: bytes | None, expected: bytes, what: str
) -> None:
    if stored is None:
        report.problem(f"{what}: its log leaf {index} is missing")
    elif bytes(stored) != expected:
        report.problem(f"{what}: content does not match log leaf {index}")


# Rows per signature job: big enough that a job's overhead (a pickle round trip to a
# worker process) is small, small enough that the chunks in flight stay a few MiB.
CHUNK_ROWS = 512
# Chunks in flight per worker. One was not enough on a shared machine: with a
# single chunk queued ahead, a worker or the reading thread losing its core
# stalled the other two (results are taken in order), so a verify got less CPU
# than the one-thread ceiling beside it. A deeper queue lets them run on.
IN_FLIGHT_PER_WORKER = 4


# The rows the UI shows are joined on (not one look-up per record): after the
# record's 14 columns, presence then columns of its message, receipt, attachment.
_RECORD_ROWS = (
    "SELECT r.id, r.record_id, r.device_id, r.kind, r.received_at, r.body, r.signature,"  # noqa: S608 - fixed SQL
    " r.content_sha256, r.log_index, r.destroyed_at, l.leaf_data, r.client_id, r.sent_at,"
    " c.ref,"
    " m.record_id, m.direction, m.sender,"
    # schema.MESSAGE_TEXT itself: what search and the conversation pages show is
    # exactly what is checked against the signed record.
    f" {MESSAGE_TEXT},"
    " m.sent_at, m.edits_client_id, m.deleted,"
    " x.record_id, x.target_client_id, x.receipt, x.at,"
    " a.record_id, a.message_client_id, a.blob_sha256, a.size, a.name, a.mime,"
    # Last: the conversation index's check (conv_keys.index_problems) sums it here.
    " r.conversation_id"
    " FROM records r LEFT JOIN log_leaves l ON l.idx = r.log_index"
    " LEFT JOIN conversations c ON c.id = r.conversation_id"
    " LEFT JOIN messages m ON m.record_id = r.id LEFT JOIN receipts x ON x.record_id = r.id"
    " LEFT JOIN attachments a ON a.record_id = r.id"
)

_IN_RANGE = " WHERE r.log_index >= ? AND r.log_index < ? ORDER BY r.log_index"


def verify_records(
    conn: Connection,
    progress: Progress,
    report: VerifyReport,
    log_range: tuple[int, int] | None = None,
) -> None:
    """Check every record, or (incremental verify) those whose leaf is in `log_range`."""
    if log_range is None:
        total = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        rows = conn.execute(_RECORD_ROWS + " ORDER BY r.id")
    else:
        # Walks the log_index unique index: a range costs its own size at any archive size.
        total = int(
            conn.execute(
                "SELECT count(*) FROM records WHERE log_index >= ? AND log_index < ?", log_range
            ).fetchone()[0]
        )
        rows = conn.execute(_RECORD_ROWS + _IN_RANGE, log_range)
    keys = {int(i): bytes(k) for i, k in conn.execute("SELECT id, sign_key FROM devices")}
    with SignaturePool(keys, total) as pool:
        pending: deque[tuple[list[tuple[Any, ...]], Pending]] = deque()
        while True:
            chunk = rows.fetchmany(CHUNK_ROWS)
            if chunk:
                jobs: list[SignatureJob] = [(r[2], _blob(r[5]), _blob(r[6]), r[9]) for r in chunk]
                pending.append((chunk, pool.submit(jobs)))
            # Check the oldest chunk once enough newer ones keep the workers busy.
            while pending and (not chunk or len(pending) > pool.workers * IN_FLIGHT_PER_WORKER):
                done, signed = pending.popleft()
                for row, signature_ok in zip(done, signed.result(), strict=True):
                    _one_record(row, signature_ok, progress, report, total)
            if not chunk:
                return


def _blob(value: object) -> object:
    """What a worker process can be sent (a memoryview cannot be pickled)."""
    return bytes(value) if isinstance(value, memoryview) else value


def _one_record(
    row: tuple[Any, ...],
    signature_ok: Signed,
    progress: Progress,
    report: VerifyReport,
    total: int,
) -> None:
    what = f"record {row[0]} (log {row[8]})"
    # What `guarded` does, inline: a generator-based context manager per record
    # costs about a microsecond, ~5 % of the reading thread's work on a record.
    try:
        report.conversations += conv_keys.conversation_term(int(row[31]), int(row[0]))
        _verify_record(row, signature_ok, what, report)
    except sqlcipher3.DatabaseError:
        raise
    except Exception as exc:
        report.problem(f"{what}: malformed entry ({type(exc).__name__}: {exc})")
    report.records += 1
    if report.records % 50_000 == 0:
        progress("records", report.records, total)


def _verify_record(
    row: tuple[Any, ...],
    signature_ok: Signed,
    what: str,
    report: VerifyReport,
) -> None:
    _, record_id, _, kind, received_at, body, signature, content_sha = row[:8]
    index, gone, stored_leaf, client_id, sent_at, conv_ref = row[8:14]
    content_sha = bytes(content_sha)
    if isinstance(signature_ok, Exception):
        raise signature_ok
    if gone is not None:
        report.destroyed += 1
    elif body is None:
        report.problem(f"{what}: content missing but not marked destroyed")
    else:
        body = bytes(body)
        authentic = True
        if hashlib.sha256(body).digest() != content_sha or bytes(record_id) != content_sha:
            report.problem(f"{what}: content does not match its hash")
            authentic = False
        if not signature_ok:
            report.problem(f"{what}: the device signature does not verify")
            authentic = False
        if authentic:
            _check_derived(
                report,
                what,
                row[14:],
                body,
                bytes(signature),
                (kind, client_id, sent_at, conv_ref),
            )
    check_leaf(report, index, stored_leaf, leaf_data(kind, content_sha, received_at), what)
