"""What was verified when: each verify run, full or incremental, kept in the archive.

`run_verification` is what the CLI, the night job and the web's "Check now"
call. It picks the run (full, incremental, or what the schedule asks), runs
it on a reader in one snapshot, and writes a `verifications` row (migration 7)
saying which signed head it verified, what it re-read and whether it passed.

Which run: an incremental run needs a start, the head the newest verification
verified *and passed*. With none (a new or just upgraded archive) or after a
failed run, it runs a full verify instead: a failure is cleared only by a full
verify that passes, so an incremental run that happens to miss the damage can
never turn a failure green. "scheduled" (the nightly timer) is incremental,
and full once the last passing full verify is FULL_EVERY_MS old.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlcipher3

from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveError
from strongroom.archive.losses import check_witness_files, witness_of
from strongroom.archive.store import Archive, Txn, WriteOpOf
from strongroom.archive.verify import WHOLE_LOG, page_check_of, verify_archive
from strongroom.archive.verify_incremental import SAMPLE_MAX, Coverage, Start, verify_incremental
from strongroom.archive.verify_records import Progress, VerifyReport
from strongroom.proof.sth import SignedTreeHead
from strongroom.utc import iso_utc

Kind = Literal["full", "incremental"]
Mode = Literal["full", "incremental", "scheduled"]
MODES: tuple[Mode, ...] = ("full", "incremental", "scheduled")
FULL_EVERY_MS = 7 * 24 * 3600 * 1000
# Why a run was made (`verifications.purpose`, schema 9): the nightly schedule,
# someone's "check now" (web, CLI), the GDPR register's integrity line, the check of a
# restored archive. '' for runs kept before the column existed.
Purpose = Literal["scheduled", "manual", "register", "restore", ""]
PURPOSES: tuple[Purpose, ...] = ("scheduled", "manual", "register", "restore")
# Problem lines kept with a run (the count is kept whole).
KEPT_PROBLEMS = 20

_COLUMNS = (
    "id, kind, started_at, finished_at, ok, from_size, tree_size, root_hash, head_timestamp_ms,"
    " head_signature, records, leaves, sample_from, sample_to, sweep_started_at, problems,"
    " first_problems, purpose"
)


@dataclass(frozen=True)
class Verification:
    """One row of `verifications`."""

    id: int
    kind: Kind
    started_at: int
    finished_at: int
    ok: bool
    from_size: int
    tree_size: int
    root_hash: bytes | None
    head_timestamp_ms: int | None
    head_signature: bytes | None
    records: int
    leaves: int
    sample_from: int
    sample_to: int
    sweep_started_at: int | None
    problems: int
    first_problems: tuple[str, ...]
    purpose: Purpose = ""

    @property
    def head(self) -> SignedTreeHead | None:
        if self.root_hash is None or self.head_signature is None or self.head_timestamp_ms is None:
            return None
        return SignedTreeHead(
            self.tree_size, self.root_hash, self.head_timestamp_ms, self.head_signature
        )

    @property
    def completes_sweep(self) -> bool:
        """This run re-read the end of the older log: with the runs since the sweep
        began, the whole log up to `tree_size` has been re-read."""
        return self.kind == "full" or (self.from_size > 0 and self.sample_to == self.from_size)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "started_at_ms": self.started_at,
            "started_at_utc": iso_utc(self.started_at),
            "finished_at_ms": self.finished_at,
            "finished_at_utc": iso_utc(self.finished_at),
            "from_size": self.from_size,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex() if self.root_hash else None,
            "records": self.records,
            "leaves": self.leaves,
            "sample": [self.sample_from, self.sample_to],
            "sweep_started_at_ms": self.sweep_started_at,
            "sweep_started_at_utc": (
                None if self.sweep_started_at is None else iso_utc(self.sweep_started_at)
            ),
            "problems": self.problems,
            "first_problems": list(self.first_problems),
            "purpose": self.purpose,
        }


def _row(row: Sequence[Any]) -> Verification:
    (id_, kind, started, finished, ok, from_size, size, root, head_ts, head_sig) = row[:10]
    records, leaves, s_from, s_to, sweep, problems, first, purpose = row[10:]
    try:
        kept = tuple(str(p) for p in json.loads(str(first)))
    except ValueError:
        kept = ()
    return Verification(
        int(id_),
        "full" if kind == "full" else "incremental",
        int(started),
        int(finished),
        bool(ok),
        int(from_size),
        int(size),
        None if root is None else bytes(root),
        None if head_ts is None else int(head_ts),
        None if head_sig is None else bytes(head_sig),
        int(records),
        int(leaves),
        int(s_from),
        int(s_to),
        None if sweep is None else int(sweep),
        int(problems),
        kept,
        _purpose(str(purpose)),
    )


def _purpose(text: str) -> Purpose:
    for known in PURPOSES:
        if text == known:
            return known
    return ""


def latest(
    conn: Connection, kind: Kind | None = None, *, ok: bool | None = None
) -> Verification | None:
    where: list[str] = []
    args: list[object] = []
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    if ok is not None:
        where.append("ok = ?")
        args.append(int(ok))
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM verifications{clause} ORDER BY id DESC LIMIT 1",  # noqa: S608
        args,
    ).fetchone()
    return None if row is None else _row(row)


def recent(conn: Connection, limit: int = 20) -> list[Verification]:
    return [
        _row(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM verifications ORDER BY id DESC LIMIT ?",  # noqa: S608
            (limit,),
        )
    ]


def recent_runs_json(archive: Archive, limit: int = 20) -> list[dict[str, object]]:
    """The newest runs, newest first, as `verify --status` prints them (a new reader)."""
    conn = archive.reader()
    try:
        return [run.to_json() for run in recent(conn, limit)]
    finally:
        conn.close()


@dataclass(frozen=True)
class WholeCoverage:
    """The newest time the whole log (up to `tree_size`) was re-read by passing runs,
    between `since_ms` (the sweep's first run) and `until_ms`."""

    tree_size: int
    since_ms: int
    until_ms: int
    kind: Kind


def whole_coverage(conn: Connection) -> WholeCoverage | None:
    """The newest passing full run, or the newest incremental sweep that ended, if later.

    Passing runs chain: an incremental run starts only from a passing one, so a
    sweep's slices and its new ranges, once it reaches the end, tile the log.
    """
    full = latest(conn, "full", ok=True)
    best = (
        None
        if full is None
        else WholeCoverage(full.tree_size, full.started_at, full.finished_at, "full")
    )
    for run in recent(conn, 200):
        if not run.ok:
            break  # runs before a failure do not chain into the ones after it
        if run.kind == "incremental" and run.completes_sweep and run.sweep_started_at is not None:
            if best is None or run.finished_at > best.until_ms:
                best = WholeCoverage(
                    run.tree_size, run.sweep_started_at, run.finished_at, "incremental"
                )
            break
    return best


def _record_op(row: dict[str, object]) -> WriteOpOf[int]:
    def op(txn: Txn) -> int:
        cursor = txn.conn.execute(
            "INSERT INTO verifications (kind, started_at, finished_at, ok, from_size, tree_size,"
            " root_hash, head_timestamp_ms, head_signature, records, leaves, sample_from,"
            " sample_to, sweep_started_at, problems, first_problems, purpose)"
            " VALUES (:kind, :started_at, :finished_at, :ok, :from_size, :tree_size, :root_hash,"
            " :head_timestamp_ms, :head_signature, :records, :leaves, :sample_from, :sample_to,"
            " :sweep_started_at, :problems, :first_problems, :purpose)",
            row,
        )
        return int(cursor.lastrowid or 0)

    return op


def choose(conn: Connection, mode: Mode, now_ms: int) -> tuple[Kind, Verification | None]:
    """Which run `mode` means now, and the passing run an incremental one starts from."""
    if mode == "full":
        return "full", None
    last = latest(conn)
    if last is None or not last.ok or last.head is None:
        return "full", None
    if mode == "scheduled":
        full = latest(conn, "full", ok=True)
        if full is None or now_ms - full.started_at >= FULL_EVERY_MS:
            return "full", None
    return "incremental", last


def _cursor(conn: Connection, previous: Verification | None) -> Verification | None:
    """The passing incremental run whose slice the next one continues from."""
    if previous is None:
        return None
    if previous.kind == "incremental":
        return previous
    cursor = latest(conn, "incremental", ok=True)
    failed = latest(conn, ok=False)
    if cursor is not None and failed is not None and failed.id > cursor.id:
        return None  # a sweep never spans a failure: start the slices again
    return cursor


def _sweep_runs(conn: Connection, previous: Verification) -> int:
    """How many runs the sweep `previous` belongs to has had (0: it ended)."""
    if previous.kind == "full" or previous.completes_sweep:
        return 0
    row = conn.execute(
        "SELECT count(*) FROM verifications WHERE kind = 'incremental' AND sweep_started_at = ?",
        (previous.sweep_started_at,),
    ).fetchone()
    return int(row[0])


def run_verification(
    archive: Archive,
    mode: Mode,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
    conn: Connection | None = None,
    *,
    sample_max: int = SAMPLE_MAX,
    purpose: Purpose | None = None,
) -> tuple[VerifyReport, Verification]:
    """Verify as `mode` says, on `conn` (a reader in one snapshot) or a new reader,
    and keep the run in `verifications`. Blocking: run it in a thread.
    `sample_max`: the most older leaves an incremental run re-reads; `purpose`: why
    (by default "scheduled" for the scheduled mode, else "manual")."""
    started = int(clock() * 1000)
    reader = conn if conn is not None else archive.reader()
    box_key = bytes(archive.signing_key.verify_key)
    quiet: Progress = progress or (lambda _s, _d, _t: None)
    # Not a kept head a lost-head file already names (one line per loss, not two).
    witness = witness_of(archive)
    try:
        kind, previous = choose(reader, mode, started)
        # Where the rotating slice goes on: the last passing incremental run's
        # cursor, across the weekly full runs (else the slices after a full run
        # would restart at 0 and never reach the end of the log).
        cursor = _cursor(reader, previous)
        if previous is not None and previous.head is not None:
            start = Start(
                previous.head,
                cursor.sample_to if cursor else 0,
                _sweep_runs(reader, cursor) if cursor else 0,
            )
            report, coverage = verify_incremental(
                reader,
                archive.blobs,
                box_key,
                start,
                quiet,
                witness=witness,
                sample_max=sample_max,
            )
        else:
            report = verify_archive(
                reader,
                archive.blobs,
                box_key,
                quiet,
                witness=witness,
                page_check=page_check_of(archive),
            )
            size = report.tree_head.tree_size if report.tree_head else 0
            coverage = Coverage(0, size, 0, size)
        # The files beside archive.db: an unreadable kept head, heads the log lost
        # (kept aside at an open): named at every run (losses.py).
        check_witness_files(archive, reader, report)
    finally:
        if conn is None:
            reader.close()
    head = report.tree_head
    if kind == "full" or coverage.sample_from == 0 or cursor is None:
        sweep = started  # a full run, or a slice that starts the older log again
    else:
        sweep = cursor.sweep_started_at or started
    row: dict[str, object] = {
        "kind": kind,
        "started_at": started,
        "finished_at": int(clock() * 1000),
        "ok": int(report.ok),
        "from_size": coverage.from_size,
        "tree_size": coverage.tree_size,
        "root_hash": head.root_hash if head else None,
        "head_timestamp_ms": head.timestamp_ms if head else None,
        "head_signature": head.signature if head else None,
        "records": report.records,
        "leaves": report.leaves,
        "sample_from": coverage.sample_from,
        "sample_to": coverage.sample_to,
        "sweep_started_at": sweep,
        "problems": len(report.problems),
        "first_problems": json.dumps(report.problems[:KEPT_PROBLEMS], ensure_ascii=False),
        "purpose": purpose or ("scheduled" if mode == "scheduled" else "manual"),
    }
    try:
        row_id = archive.write(_record_op(row))
    except (ArchiveError, sqlcipher3.DatabaseError) as exc:
        # The check itself ran; a box that cannot keep its result must say so.
        report.problem(f"this verification could not be kept in the archive ({exc})")
        row_id = 0
    return report, _row((row_id, *(row[c.strip()] for c in _COLUMNS.split(",")[1:])))


__all__ = [
    "FULL_EVERY_MS",
    "MODES",
    "PURPOSES",
    "WHOLE_LOG",
    "Kind",
    "Mode",
    "Purpose",
    "Verification",
    "WholeCoverage",
    "choose",
    "latest",
    "recent",
    "recent_runs_json",
    "run_verification",
    "whole_coverage",
]
