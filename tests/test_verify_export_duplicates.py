"""verify-export refuses a bundle whose zip lists one member name twice.

Zip readers disagree on which copy of a repeated name they give: Python's zipfile
(and so the verifier) the last, streaming readers and some viewers the first,
`unzip` asks or overwrites. A bundle carrying a forged record first and the
genuine one after it passed every check while a reader could be shown the forgery.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest

from strongroom.office.sealed import seal_container, seal_placeholder
from strongroom.office.verify_export import main as verify_main
from strongroom.office.verify_export import verify_bundle
from test_mutants_verify_export import export, read_members
from test_office_support import Box, box_with_two_messages

box = pytest.fixture(box_with_two_messages)


def with_a_second_copy(bundle: Path, out: Path, name: str, first: bytes, box: Box) -> Path:
    """Every member as it was, but `name` written twice: `first`, then the genuine
    bytes; sealed again with the box's own key (the strongest forger)."""
    root, files = read_members(bundle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for member, data in files.items():
                if member == name:
                    zf.writestr(f"{root}/{member}", first)
                zf.writestr(f"{root}/{member}", data)
            zf.comment = seal_placeholder()
    seal_container(out, box.archive.signing_key)
    return out


def test_a_member_name_listed_twice_is_refused(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genuine = export(box, tmp_path / "export.zip")
    assert verify_bundle(genuine).ok
    _, files = read_members(genuine)
    record = next(n for n in files if n.startswith("records/") and n.endswith(".json"))
    forged = files[record].replace(b"Je retire", b"Je maintiens")
    tampered = with_a_second_copy(genuine, tmp_path / "tampered.zip", record, forged, box)
    with zipfile.ZipFile(tampered) as zf:  # the reader's view: first copy vs last
        first = next(i for i in zf.infolist() if i.filename.endswith(record))
        assert zf.read(first) == forged and zf.read(zf.getinfo(first.filename)) == files[record]

    report = verify_bundle(tampered)
    assert not report.ok
    assert record in report.failing_files()
    (problem,) = [p for p in report.problems if p.file == record]
    assert "2 fois" in problem.message and "2 times" in problem.message

    assert verify_main([str(tampered)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED  {record}: figure 2 fois dans le zip" in out
    assert "is in the zip 2 times" in out
    assert "must not be trusted" in out
