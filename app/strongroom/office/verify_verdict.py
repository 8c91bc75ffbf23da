"""`strongroom verify-export`'s verdict: the signing key, whose key it must be, the problems."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from strongroom.office.sealed import BOX_PEM
from strongroom.office.verify_text import SIGNING_LABEL_EN

if TYPE_CHECKING:
    from strongroom.office.verify_export import ExportReport


def expect_fingerprint(report: ExportReport, expected: str, whose: str) -> None:
    """Refuse the bundle unless its signing key is the one `whose` shows."""
    wanted = expected.strip().lower()
    if report.signing_fingerprint != wanted:
        report.problem(
            BOX_PEM,
            f"signing key fingerprint {report.signing_fingerprint} is not {wanted} ({whose})",
        )


def main(argv: Sequence[str] | None = None, *, expected: Sequence[tuple[str, str]] = ()) -> int:
    """`strongroom verify-export FILE`: print the verdict; exit 0 only if all is well.

    `expected`: (fingerprint, where it comes from) pairs the bundle's key must equal.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: strongroom verify-export FILE", file=sys.stderr)
        return 2
    from strongroom.office.verify_export import verify_bundle

    report = verify_bundle(Path(args[0]))
    print(f"{SIGNING_LABEL_EN}: {report.signing_fingerprint}")
    for fingerprint, whose in expected:
        expect_fingerprint(report, fingerprint, whose)
    if report.signing_fingerprint is not None and not expected:
        print("  compare it with the box's Identity page, or give --expect-fingerprint")
    for problem in report.problems:
        print(f"FAILED  {problem}")
    if report.ok:
        head = report.tree_head
        size = head.tree_size if head else "?"
        print(
            f"OK  {report.kind}: {report.files} files, {report.records} records,"
            f" {report.attachments} attachments, {report.proofs} inclusion proofs"
            f" against a signed log of {size} entries, which extends"
            f" {report.consistency} earlier published head(s) (consistency proofs)"
        )
        return 0
    print(f"{len(report.problems)} problem(s): this bundle must not be trusted")
    return 1
