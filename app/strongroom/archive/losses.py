"""What verify and the Integrity page say of lost heads, and their acknowledgement.

A lost-head file (lost_heads.py) names acknowledged records the log lost; verify
names it at every run. Once an administrator has investigated (restored from a
backup, asked the phones to send again, or found nothing more to do), they
acknowledge it, on the Integrity page or with `strongroom losses acknowledge FILE
--note TEXT` (cli/losses.py): an audit event (ACTION: who, when, the file, the head
it holds, their note) in the signed log. From then on verify lists the loss as a
note ("acknowledged by ...") and no longer as a problem. The acknowledgement names
the head, not only the file: a later, different loss under the same name (the
first file moved away) is a new problem. The file itself stays: the box never deletes evidence.

Also here: what verify adds about the kept head beside the log's own checks
(`check_witness_files`), and which kept head it checks at all (`witness_of`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom.archive import writes
from strongroom.archive.db import Connection
from strongroom.archive.errors import ArchiveError
from strongroom.archive.kept_head import WITNESS_FILE, unreadable
from strongroom.archive.lost_heads import Finding, examine, lost_paths, read_lost_head
from strongroom.archive.store import latest_tree_head, reader_log
from strongroom.archive.txn import Txn, WriteOpOf
from strongroom.archive.verify_records import VerifyReport
from strongroom.proof.sth import SignedTreeHead
from strongroom.utc import iso_utc

if TYPE_CHECKING:
    from strongroom.archive.store import Archive

ACTION = "integrity.loss_acknowledged"
MAX_NOTE = 1000  # characters


class LossNotAcknowledged(ArchiveError):
    """An acknowledgement refused (nothing was written); the message says why."""


class LossChanged(LossNotAcknowledged):
    """The file no longer holds the head the administrator was shown (review L2)."""


_HEAD = re.compile(r"([0-9]{1,18}):([0-9a-fA-F]{64})")


def head_text(tree_size: int, root_hex: str) -> str:
    """A head as `strongroom losses list` prints it and `--head` takes it: SIZE:ROOTHEX."""
    return f"{tree_size}:{root_hex}"


def parse_head(text: str) -> tuple[int, str]:
    """SIZE:ROOTHEX (`head_text`) as (size, lowercase root hex); refused if garbled."""
    found = _HEAD.fullmatch(text.strip())
    if found is None:
        raise LossNotAcknowledged(
            f"the head {text!r} is not SIZE:ROOTHEX as `strongroom losses list` prints it"
        )
    return int(found[1]), found[2].lower()


@dataclass(frozen=True)
class Acknowledgement:
    file: str
    tree_size: int
    root_hash: str  # hex
    actor: str
    at_ms: int
    note: str
    log_index: int

    def words(self) -> str:
        when = utc_text(self.at_ms)
        return f"acknowledged by {self.actor} on {when}: {self.note}"


@dataclass(frozen=True)
class Loss:
    """One lost-head file as the Integrity page, `strongroom losses` and verify show it."""

    finding: Finding
    acknowledged: Acknowledgement | None

    @property
    def file(self) -> str:
        return self.finding.file

    @property
    def head(self) -> str | None:
        """The head the file holds, SIZE:ROOTHEX (`head_text`); None if unreadable."""
        head = self.finding.head
        return None if head is None else head_text(head.tree_size, head.root_hash.hex())

    @property
    def can_acknowledge(self) -> bool:
        return self.finding.head is not None and self.acknowledged is None

    def to_json(self) -> dict[str, Any]:
        head, ack = self.finding.head, self.acknowledged
        return {
            "file": self.file,
            "text": self.finding.text,
            "tree_size": None if head is None else head.tree_size,
            "root_hash": None if head is None else head.root_hash.hex(),
            "head": self.head,
            "acknowledged": None
            if ack is None
            else {
                "by": ack.actor,
                "at_ms": ack.at_ms,
                "at_utc": iso_utc(ack.at_ms),
                "note": ack.note,
                "log_index": ack.log_index,
            },
        }


def utc_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def acknowledgements(conn: Connection) -> dict[tuple[int, str], Acknowledgement]:
    """The acknowledged losses, by the head they name (size, root hex): the first one."""
    found: dict[tuple[int, str], Acknowledgement] = {}
    rows = conn.execute(
        "SELECT at, actor, target, details, log_index FROM audit_events WHERE action = ?"
        " ORDER BY id",
        (ACTION,),
    )
    for at, actor, target, details, log_index in rows:
        try:
            fields = json.loads(details)
            key = (int(fields["tree_size"]), str(fields["root_hash"]))
        except (ValueError, KeyError, TypeError):
            continue  # not one this module wrote: names no head
        found.setdefault(
            key,
            Acknowledgement(
                str(target),
                key[0],
                key[1],
                str(actor),
                int(at),
                str(fields.get("note", "")),
                int(log_index),
            ),
        )
    return found


def losses(data_dir: Path, conn: Connection, box_key: bytes) -> list[Loss]:
    """Every lost-head file that names a loss (or cannot be read), the first one first."""
    log_, newest = reader_log(conn), latest_tree_head(conn)
    acks = acknowledgements(conn)
    found = []
    for path in lost_paths(data_dir):
        finding = examine(path, log_, newest, box_key)
        if finding is None:
            continue
        head = finding.head
        ack = None if head is None else acks.get((head.tree_size, head.root_hash.hex()))
        found.append(Loss(finding, ack))
    return found


def acknowledge_loss(
    data_dir: Path,
    box_key: bytes,
    file: str,
    actor: str,
    note: str,
    expect: tuple[int, str] | None = None,
) -> WriteOpOf[Acknowledgement]:
    """The audit event that acknowledges the loss `file` names (checked in the write's
    transaction, so two administrators cannot both acknowledge it). `expect`, the head
    (size, root hex) the administrator was shown: refused (LossChanged) if the file
    holds another one now (moved away, a new loss written under the freed name)."""
    note = note.strip()

    def op(txn: Txn) -> Acknowledgement:
        if not note:
            raise LossNotAcknowledged("say what was done about the loss (a note is required)")
        if len(note) > MAX_NOTE:
            raise LossNotAcknowledged(f"the note has more than {MAX_NOTE} characters")
        loss = next((x for x in losses(data_dir, txn.conn, box_key) if x.file == file), None)
        if loss is None:
            raise LossNotAcknowledged(f"{file} names no loss in {data_dir}")
        if expect is not None and loss.head != head_text(*expect):
            now = "no head it can read" if loss.head is None else f"the head {loss.head}"
            raise LossChanged(
                f"{file} changed since it was shown: it holds {now}, not"
                f" {head_text(*expect)}; look again (strongroom losses list) before"
                " acknowledging it"
            )
        if loss.acknowledged is not None:
            raise LossNotAcknowledged(f"{file}: already {loss.acknowledged.words()}")
        head = loss.finding.head
        if head is None:  # unreadable, damaged, or not signed by this box: nothing to bind to
            raise LossNotAcknowledged(f"{loss.finding.text}; it cannot be acknowledged as it is")
        details = {
            "file": file,
            "tree_size": head.tree_size,
            "root_hash": head.root_hash.hex(),
            "note": note,
        }
        index = writes.audit(actor, ACTION, file, details)(txn)
        return Acknowledgement(
            file, head.tree_size, head.root_hash.hex(), actor, txn.at_ms, note, index
        )

    return op


def witness_of(archive: Archive) -> SignedTreeHead | None:
    """The kept head verify checks against the log: none when a lost-head file already
    holds it (the open kept it aside and the box has not written since): that file
    names the loss, once, and its acknowledgement applies."""
    kept = archive.witness_head()
    if kept is None:
        return None
    held = (read_lost_head(p) for p in lost_paths(archive.path.parent))
    return None if any(h == kept for h in held) else kept


def check_witness_files(archive: Archive, conn: Connection, report: VerifyReport) -> None:
    """What the files beside archive.db witness, at every verify: a kept head that
    holds no head (no witness, which must not pass for a missing one), the loss each
    lost-head file names (a note once acknowledged), and a kept head the box cannot
    write (a note: the archive is whole, but a loss would go unnamed meanwhile)."""
    data_dir = archive.path.parent
    why = unreadable(data_dir / WITNESS_FILE)
    if why is not None:
        report.problem(
            f"log: the kept tree head ({WITNESS_FILE}) is unreadable ({why}): commits lost"
            " before the box's next write may go unnamed (docs/operations.md)"
        )
    for loss in losses(data_dir, conn, bytes(archive.signing_key.verify_key)):
        if loss.acknowledged is None:
            report.problem(loss.finding.text)
        else:
            report.note(f"{loss.finding.text} [{loss.acknowledged.words()}]")
    failing = kept_head_failing(archive)
    if failing is not None:
        report.note(failing)


def kept_head_failing(archive: Archive) -> str | None:
    """Why the box has not written its kept head since when, in words; None while it does."""
    kept = archive.kept_head
    if kept.failing_since_ms is None:
        return None
    return (
        f"the kept tree head ({WITNESS_FILE}) has not been written since"
        f" {utc_text(kept.failing_since_ms)} ({kept.failure}): commits a damaged database"
        " file drops meanwhile would go unnamed; free space on the data disk or give the"
        " file back to the box's user (docs/operations.md)"
    )


def kept_head_json(archive: Archive | None) -> dict[str, Any] | None:
    """The kept head's failure for `strongroom status --json`; None while it is written."""
    if archive is None or archive.kept_head.failing_since_ms is None:
        return None
    since = archive.kept_head.failing_since_ms
    return {
        "failing_since_ms": since,
        "failing_since_utc": iso_utc(since),
        "failure": archive.kept_head.failure,
        "text": kept_head_failing(archive),
    }


__all__ = [
    "ACTION",
    "Acknowledgement",
    "Loss",
    "LossChanged",
    "LossNotAcknowledged",
    "acknowledge_loss",
    "acknowledgements",
    "check_witness_files",
    "head_text",
    "kept_head_failing",
    "kept_head_json",
    "losses",
    "parse_head",
    "witness_of",
]
