"""Lost heads: the evidence of commits the log lost, kept beside archive.db for good.

Why: the kept head (kept_head.py) names lost commits only while it is the newest
head. The first batch after a restart (a phone's push, an audit event) writes its
smaller head over the older slot with a higher sequence number, and from then on
the kept head agrees with the shorter log: the loss would never be named again.

So when the archive is opened, before anything is written, the kept head is
compared with the newest head in the database. One the log does not contain (larger
than it, or whose root the log does not reproduce at its size: the consistency
check verify does) is copied to `tree_head.lost` beside archive.db (a whole new
file: written, fsynced, linked into place, the directory fsynced). verify (full, incremental,
scheduled) reads every such file as a second witness and names the loss at every
run (`examine`; losses.py), so the integrity page shows it, as a problem until an
administrator acknowledges it, then as a note (docs/operations.md, "tree_head.lost").
The box never deletes one.

An existing file is never overwritten: the first evidence is the one that matters
(a later open may find a kept head that already lags it). A different head lost
later is kept beside it as `tree_head.lost.2`, `.3`, ...; the same head found again
(a box reopened before any write) is not copied twice.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from strongroom.archive.kept_head import fsync_dir, read_failure
from strongroom.proof.merkle import MerkleLog, NodeMissingError, TreeSizeError, verify_consistency
from strongroom.proof.sth import SignedTreeHead, verify_tree_head

log = logging.getLogger(__name__)

LOST_FILE = "tree_head.lost"


def contains(log_: MerkleLog, size: int, root: bytes, witness: SignedTreeHead) -> bool:
    """Whether the log at (`size`, `root`) contains `witness` as a prefix."""
    if witness.tree_size > size:
        return False
    try:
        proof = log_.consistency_proof(witness.tree_size, size)
    except (NodeMissingError, TreeSizeError):
        return False
    return verify_consistency(witness.tree_size, size, witness.root_hash, root, proof)


def _number(path: Path) -> int | None:
    """1 for tree_head.lost, N for tree_head.lost.N, None for anything else."""
    if path.name == LOST_FILE:
        return 1
    suffix = path.name.removeprefix(LOST_FILE + ".")
    return int(suffix) if suffix != path.name and suffix.isascii() and suffix.isdigit() else None


def lost_paths(data_dir: Path) -> list[Path]:
    """The lost-head files in `data_dir`, the first one first (whichever were moved away)."""
    found = [(n, p) for p in data_dir.glob(LOST_FILE + "*") if (n := _number(p)) is not None]
    return [p for _, p in sorted(found)]


def _parse(content: bytes) -> SignedTreeHead | None:
    try:
        return SignedTreeHead.from_dict(json.loads(content))
    except ValueError:  # MalformedTreeHeadError is a ValueError
        return None


def read_lost_head(path: Path) -> SignedTreeHead | None:
    try:
        return _parse(path.read_bytes())
    except OSError:
        return None


def keep_if_lost(
    data_dir: Path,
    kept: SignedTreeHead | None,
    newest: SignedTreeHead | None,
    log_: MerkleLog,
    box_key: bytes,
) -> Path | None:
    """At open, before any write: copy `kept` to a lost-head file if the log lost it.

    Returns the file written, or None. Never raises for a disk error: the box
    must keep serving (the kept head itself still holds the evidence until the
    next write; the warning is logged)."""
    if kept is None or not verify_tree_head(kept, box_key):
        return None  # no witness, or not one this box signed: nothing to keep
    size, root = (newest.tree_size, newest.root_hash) if newest else (0, b"")
    if kept.tree_size == 0 or contains(log_, size, root, kept):
        return None
    paths = lost_paths(data_dir)
    if any(read_lost_head(p) == kept for p in paths):
        return None
    last = max((_number(p) or 1 for p in paths), default=0)
    target = data_dir / (LOST_FILE if last == 0 else f"{LOST_FILE}.{last + 1}")
    try:
        _write_whole(target, json.dumps(kept.to_dict(), indent=1).encode("ascii") + b"\n")
    except OSError as exc:
        log.error("the lost tree head of size %d could not be kept (%s)", kept.tree_size, exc)
        return None
    log.error(
        "the kept tree head (size %d) is not in the log (size %d): kept in %s",
        kept.tree_size,
        size,
        target.name,
    )
    return target


def _write_whole(target: Path, content: bytes) -> None:
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # A link, not a rename: it fails if the name exists (another process was
        # first), so an existing lost head is never replaced.
        os.link(tmp, target)
    finally:
        tmp.unlink()
    fsync_dir(target.parent)


@dataclass(frozen=True)
class Finding:
    """What one lost-head file names. `head`: the loss, signed by this box, which an
    administrator may acknowledge (losses.py); None when the file holds no head that
    can be read and trusted (`text` says why and what to do)."""

    file: str
    text: str
    head: SignedTreeHead | None


def examine(
    path: Path, log_: MerkleLog, newest: SignedTreeHead | None, box_key: bytes
) -> Finding | None:
    """What verify says of one lost-head file; None when it names no loss (the log
    holds its head again: the lost records were restored)."""
    name = path.name
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return None  # moved away meanwhile
    except OSError as exc:
        return Finding(name, f"log: {name} is unreadable ({read_failure(path, exc)})", None)
    head = _parse(content)
    if head is None:
        return Finding(
            name,
            f"log: {name} holds no tree head (a damaged file): keep it with the incident"
            " record, and look for lost records as docs/operations.md says (tree_head.lost)",
            None,
        )
    if not verify_tree_head(head, box_key):
        return Finding(name, f"log: the tree head in {name} is not signed by this box", None)
    size, root = (newest.tree_size, newest.root_hash) if newest else (0, b"")
    if head.tree_size > size:
        return Finding(
            name,
            f"log: {name}: the box signed a tree head of size {head.tree_size} but only"
            f" {size} leaves remain: acknowledged records were lost (damaged WAL or database"
            " file); restore from a backup (docs/operations.md)",
            head,
        )
    if not contains(log_, size, root, head):
        return Finding(
            name,
            f"log: {name}: the records under the head the box signed at size"
            f" {head.tree_size} were rewritten: acknowledged records were lost; restore from"
            " a backup (docs/operations.md)",
            head,
        )
    return None


__all__ = ["LOST_FILE", "Finding", "examine", "keep_if_lost", "lost_paths", "read_lost_head"]
