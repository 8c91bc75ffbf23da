"""verify-export names each MANIFEST.sha256 line that is not `<sha256>  <file>` (64
lowercase hex digits, two spaces, a name), as `sha256sum -c` would refuse it."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.verify_export import verify_bundle
from test_office_support import T0, Box, conversation_id, new_box, new_phone, say

MANIFEST = "MANIFEST.sha256"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("lines")
    box: Box = new_box(tmp)
    phone = new_phone(box.archive)
    say(box, phone, "Bonjour Maître", at=T0)
    scope = ExportScope("conversation", conversation_id=conversation_id(box))
    out = tmp / "e.zip"
    export_bundle(box.archive, ExportRequest(scope, "me", "tribunal", "instance"), out)
    yield out
    box.close()


def _with_first_line(bundle: Path, out: Path, change: object) -> Path:
    """The bundle with its manifest's first line's digest changed by `change`."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name.endswith("/" + MANIFEST):
                first, rest = data.split(b"\n", 1)
                digest, name_part = first.split(b"  ", 1)
                data = change(digest) + b"  " + name_part + b"\n" + rest  # type: ignore[operator]
            dst.writestr(name, data)
    return out


def _line_problems(report_path: Path) -> list[str]:
    report = verify_bundle(report_path)
    return [p.message for p in report.problems if p.file == MANIFEST]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.upper(),  # hex, but not as sha256sum writes it
        lambda d: d[:10] + b"g" + d[11:],
        lambda d: d[:-1],
        lambda d: d + b"0",
        lambda d: b" " + d[1:],
    ],
    ids=["uppercase", "not-hex", "short", "long", "space"],
)
def test_a_malformed_manifest_line_is_named(bundle: Path, tmp_path: Path, change: object) -> None:
    problems = _line_problems(_with_first_line(bundle, tmp_path / "bad.zip", change))
    assert "line 1 is not '<sha256>  <file>'" in problems


def test_a_well_formed_manifest_has_no_line_problem(bundle: Path, tmp_path: Path) -> None:
    same = _line_problems(_with_first_line(bundle, tmp_path / "same.zip", lambda d: d))
    assert not any(p.startswith("line ") for p in same)
    assert verify_bundle(bundle).ok


@pytest.mark.parametrize(
    "data",
    [b"", b"a", b"a\n", b"a\nb", b"\n\n", b"x" * 3_000_000 + b"\ny\n", b"ab\n" * 700_000 + b"t"],
    ids=["empty", "no-newline", "one", "unterminated", "blank", "long-line", "many"],
)
def test_the_manifest_is_cut_into_the_lines_a_reader_sees(data: bytes) -> None:
    """verify-export reads MANIFEST.sha256 in blocks: the same lines as reading it line
    by line (the last one without its newline if the file lacks one)."""
    import io

    from strongroom.office.verify_export import _lines

    assert list(_lines(io.BytesIO(data))) == list(io.BytesIO(data))


def test_a_manifest_of_one_long_line_is_read_in_linear_time() -> None:
    """A hostile bundle's manifest without a newline: its blocks are joined once (they
    were copied again with each new block: 55 MB gave ~1.5 GB of copies)."""
    import io
    import time

    from strongroom.office.verify_export import _lines

    one_block = b"x" * (1 << 20)
    t0 = time.thread_time()
    assert [len(line) for line in _lines(io.BytesIO(one_block * 2))] == [2 << 20]
    small = time.thread_time() - t0
    t0 = time.thread_time()
    assert [len(line) for line in _lines(io.BytesIO(one_block * 64))] == [64 << 20]
    big = time.thread_time() - t0
    assert big < 32 * 4 * small + 0.5, (small, big)  # linear: 32x the bytes, not 1000x
