"""A sealed bundle as verify-export reads it: its report, its members hashed once.

The zip's central directory is trusted for nothing: a member name it lists twice
is refused (a tampered bundle could carry two members of one name, `unzip` and
`sha256sum -c` then seeing one and a reader the other), so are bytes it does not
list (bundle_layout: what a streaming reader would show unchecked), or bytes
between the directory and the end of the file that are not its end records, and
every member is read through its CRC.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from strongroom.office.bundle_layout import (
    SHORT_COMMENT,
    foreign_fields,
    layout_message,
    unlisted_message,
    unlisted_span,
    unlisted_tail,
)
from strongroom.office.sealed import SEAL_BYTES
from strongroom.proof.sth import SignedTreeHead

MAX_SMALL_MEMBER = 8 * 1024 * 1024
_ONE_READ = 1 << 16  # a member this small is hashed from one read (the rest: in blocks)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)
# Bilingual, as the bundle's own texts are (verify-export's output is read by both).
DUPLICATE_MEMBER = (
    "figure {count} fois dans le zip : un zip falsifié peut montrer une copie et en"
    " faire vérifier une autre / is in the zip {count} times: a tampered zip can show"
    " one copy and have another checked"
)


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class ExportReport:
    path: Path
    kind: str = "unknown"  # "export" | "destruction-certificate"
    files: int = 0
    records: int = 0
    proofs: int = 0
    attachments: int = 0
    consistency: int = 0  # earlier signed heads this log is proven to extend
    tree_head: SignedTreeHead | None = None
    signing_fingerprint: str | None = None  # SHA-256 of box.pem's DER key, as openssl prints it
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, file: str, message: str) -> None:
        self.problems.append(Problem(file, message))

    def failing_files(self) -> set[str]:
        return {p.file for p in self.problems}


class Bundle:
    def __init__(self, zf: zipfile.ZipFile, root: str, report: ExportReport) -> None:
        self.zf = zf
        self.root = root
        self.report = report
        self.digests: dict[str, str] = {}

    def has(self, name: str) -> bool:
        return name in self.digests

    def read(self, name: str) -> bytes | None:
        """A small member's bytes, or None (the problem is reported)."""
        if name not in self.digests:
            self.report.problem(name, "missing from the bundle")
            return None
        info = self.zf.getinfo(f"{self.root}/{name}")
        if info.file_size > MAX_SMALL_MEMBER:
            self.report.problem(name, "unexpectedly large")
            return None
        return self.zf.read(info)


def hash_members(zf: zipfile.ZipFile, report: ExportReport) -> Bundle | None:
    """Every member hashed once (SHA-256, read through its CRC); None when the
    bundle's layout is wrong or a name is listed twice (the problems say so)."""
    infos = [i for i in zf.infolist() if not i.is_dir()]
    names = [i.filename for i in infos]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        report.problem(report.path.name, "the bundle must hold exactly one top directory")
        return None
    root = roots.pop()
    repeated = {name: n for name, n in Counter(names).items() if n > 1}
    for name, count in sorted(repeated.items()):
        report.problem(name[len(root) + 1 :], DUPLICATE_MEMBER.format(count=count))
    if repeated:
        return None  # which copy a check would read is the reader's choice: none is trusted
    try:
        unlisted = unlisted_span(zf)
        tail = unlisted_tail(zf, SEAL_BYTES) if unlisted is None else None
    except ZIP_ERRORS as exc:
        report.problem(report.path.name, f"not a readable zip file ({exc})")
        return None
    if unlisted is not None:
        report.problem(report.path.name, unlisted_message(*unlisted))
        return None  # what a streaming reader shows is not what would be checked
    if tail is not None:
        report.problem(report.path.name, unlisted_message(*tail))
        if tail[2] != SHORT_COMMENT:
            return None  # every byte of the file is a listed member, the directory or its end
        # A comment too short for the seal hides nothing: the members are still named.
    try:
        foreign = foreign_fields(zf)
    except ZIP_ERRORS as exc:
        report.problem(report.path.name, f"not a readable zip file ({exc})")
        return None
    for name, msgid, values in foreign:
        report.problem(name[len(root) + 1 :] or name, layout_message(msgid, **values))
    if foreign:
        return None  # bytes shown by some readers that no check reads
    bundle = Bundle(zf, root, report)
    for info in infos:
        rel = info.filename[len(root) + 1 :]
        digest = hashlib.sha256()
        try:
            with zf.open(info) as member:
                if info.file_size <= _ONE_READ:  # nearly all: one read, to the CRC check
                    digest.update(member.read())
                else:
                    while chunk := member.read(1 << 16):
                        digest.update(chunk)
        except ZIP_ERRORS as exc:
            report.problem(rel, f"damaged inside the zip ({exc})")
            continue
        bundle.digests[rel] = digest.hexdigest()
    report.files = len(bundle.digests)
    return bundle


def verify_sig(key: VerifyKey | None, message: bytes | None, sig: bytes | None) -> bool:
    if key is None or message is None or sig is None:
        return False
    try:
        key.verify(message, sig)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


__all__ = [
    "DUPLICATE_MEMBER",
    "MAX_SMALL_MEMBER",
    "ZIP_ERRORS",
    "Bundle",
    "ExportReport",
    "Problem",
    "hash_members",
    "verify_sig",
]
