"""verify-export refuses a bundle carrying bytes its zip directory does not list.

Python's zipfile (and so the verifier) reads members through the central
directory and silently skips bytes prepended to the file; a streaming reader walks
the local headers from byte 0 and shows every entry it meets, named or not. A
forged record placed where only the streaming reader looks passed every check.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from strongroom.office.bundle_layout import unlisted_span
from strongroom.office.sealed import seal_container, seal_placeholder
from strongroom.office.verify_export import main as verify_main
from strongroom.office.verify_export import verify_bundle
from test_mutants_verify_export import export, read_members
from test_office_support import Box, box_with_two_messages

box = pytest.fixture(box_with_two_messages)


def _forged_record(bundle: Path) -> tuple[str, str, bytes]:
    root, files = read_members(bundle)
    record = next(n for n in files if n.startswith("records/") and n.endswith(".json"))
    return root, record, files[record].replace(b"Je retire", b"Je maintiens")


def _local_name_at(bundle: Path, offset: int) -> str | None:
    """The name a streaming reader reads in a local header at `offset`, if one is there."""
    data = bundle.read_bytes()
    if data[offset : offset + 4] != b"PK\x03\x04":
        return None
    name_len = int.from_bytes(data[offset + 26 : offset + 28], "little")
    return data[offset + 30 : offset + 30 + name_len].decode()


def with_bytes_prepended(bundle: Path, out: Path, box: Box) -> tuple[Path, int, str]:
    """A local entry holding a forged record, put before the genuine zip; sealed again
    with the box's own key (the strongest forger)."""
    root, record, forged = _forged_record(bundle)
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as zf:
        zf.writestr(f"{root}/{record}", forged)
        local_end = zf.start_dir  # type: ignore[attr-defined]
    out.write_bytes(hidden.getvalue()[:local_end] + bundle.read_bytes())
    seal_container(out, box.archive.signing_key)
    return out, 0, f"{root}/{record}"


def with_an_unnamed_entry(bundle: Path, out: Path, box: Box) -> tuple[Path, int, str]:
    """Every member as it was, and before the record a forged copy of it that the
    central directory does not name; sealed again with the box's own key."""
    root, record, forged = _forged_record(bundle)
    _, files = read_members(bundle)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            if member == record:
                zf.writestr(f"{root}/unlisted.json", forged)
                hidden = zf.filelist.pop()  # written, then left out of the directory
                del zf.NameToInfo[hidden.filename]
            zf.writestr(f"{root}/{member}", data)
        zf.comment = seal_placeholder()
    seal_container(out, box.archive.signing_key)
    return out, hidden.header_offset, hidden.filename


@pytest.mark.parametrize("tamper", [with_bytes_prepended, with_an_unnamed_entry])
def test_bytes_the_zip_does_not_list_are_refused(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: object
) -> None:
    genuine = export(box, tmp_path / "export.zip")
    assert verify_bundle(genuine).ok
    tampered, offset, name = tamper(genuine, tmp_path / "tampered.zip", box)  # type: ignore[operator]
    # The two views differ: a streaming reader meets the forged entry at `offset`,
    # which the directory zipfile reads does not list.
    assert _local_name_at(tampered, offset) == name
    with zipfile.ZipFile(tampered) as zf:
        assert offset not in {info.header_offset for info in zf.infolist()}

    report = verify_bundle(tampered)
    assert not report.ok
    (problem,) = report.problems
    assert problem.file == "tampered.zip"
    assert "ne sont pas exactement les membres que liste le zip" in problem.message
    assert "are not exactly the members the zip lists" in problem.message

    assert verify_main([str(tampered)]) == 1
    out = capsys.readouterr().out
    assert "FAILED  tampered.zip: les octets" in out
    assert "streaming reader could show content" in out
    assert "must not be trusted" in out


def _hidden_entry(bundle: Path) -> tuple[bytes, str]:
    """A local entry (header and data) holding a forged copy of a record."""
    root, record, forged = _forged_record(bundle)
    hidden = io.BytesIO()
    with zipfile.ZipFile(hidden, "w") as zf:
        zf.writestr(f"{root}/{record}", forged)
        local_end = zf.start_dir  # type: ignore[attr-defined]
    return hidden.getvalue()[:local_end], f"{root}/{record}"


def with_bytes_in_the_end_comment(bundle: Path, out: Path, box: Box) -> tuple[Path, int, int]:
    """A forged record's local entry put in the zip comment, before the seal (still the
    file's last bytes); sealed again with the box's own key."""
    entry, name = _hidden_entry(bundle)
    data = bundle.read_bytes()
    end_at = data.rindex(b"PK\x05\x06")
    seal = data[end_at + 22 :]
    comment_size = struct.pack("<H", len(entry) + len(seal))
    out.write_bytes(data[: end_at + 20] + comment_size + entry + seal)
    seal_container(out, box.archive.signing_key)
    assert _local_name_at(out, end_at + 22) == name  # where a scanning reader finds it
    return out, end_at + 22, end_at + 22 + len(entry)


def with_an_end_record_naming_another_directory(
    bundle: Path, out: Path, box: Box
) -> tuple[Path, int, int]:
    """The end record's directory offset moved on, and every entry's local header offset
    with it: zipfile reads the directory just before the end record anyway and takes the
    difference for bytes prepended to the zip, so it reads every member where it is,
    while a reader trusting the end record looks for the directory elsewhere."""
    data = bytearray(bundle.read_bytes())
    end_at = data.rindex(b"PK\x05\x06")
    (start_dir,) = struct.unpack_from("<I", data, end_at + 16)
    moved = 1000
    at = start_dir
    while data[at : at + 4] == b"PK\x01\x02":
        (offset,) = struct.unpack_from("<I", data, at + 42)
        struct.pack_into("<I", data, at + 42, offset + moved)
        at += 46 + sum(struct.unpack_from("<3H", data, at + 28))
    assert at == end_at
    struct.pack_into("<I", data, end_at + 16, start_dir + moved)
    out.write_bytes(bytes(data))
    seal_container(out, box.archive.signing_key)
    return out, end_at, len(data)


@pytest.mark.parametrize(
    "tamper", [with_bytes_in_the_end_comment, with_an_end_record_naming_another_directory]
)
def test_what_follows_the_directory_must_be_exactly_its_end_records(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str], tamper: object
) -> None:
    genuine = export(box, tmp_path / "export.zip")
    tampered, start, end = tamper(genuine, tmp_path / "tampered.zip", box)  # type: ignore[operator]
    # zipfile reads the genuine members, every CRC sound, every entry tiled from byte 0
    # (the check before this one): only the end of the file differs.
    with zipfile.ZipFile(tampered) as zf, zipfile.ZipFile(genuine) as original:
        assert zf.testzip() is None
        assert zf.namelist() == original.namelist()
        assert unlisted_span(zf) is None

    report = verify_bundle(tampered)
    assert not report.ok
    (problem,) = report.problems
    assert problem.file == "tampered.zip"
    assert f"bytes {start} to {end} of the file, after the zip's central" in problem.message
    assert f"les octets {start} à {end} du fichier, après le répertoire" in problem.message

    assert verify_main([str(tampered)]) == 1
    out = capsys.readouterr().out
    assert "FAILED  tampered.zip: les octets" in out
    assert "are not exactly its end records" in out
    assert "must not be trusted" in out
