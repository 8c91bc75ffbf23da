"""What a sealed bundle may carry in its zip fields is what the box writes: a zip comment
that is exactly the container seal, no member comment, and no extra field but zip64
sizes. verify-export refuses anything else in French and English, naming the file or
the member: those are bytes no check reads and some zip readers show (`zipinfo`, archive
managers). Each tampered bundle is sealed again with the box's own key (the strongest
forger), so only the rule can catch it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from strongroom.office.sealed import SEAL_BYTES, seal_container
from strongroom.office.verify_export import main as verify_main
from strongroom.office.verify_export import verify_bundle
from test_mutants_verify_export import export
from test_office_support import Box, box_with_two_messages

box = pytest.fixture(box_with_two_messages)

_END = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"


def _record_member(name: str) -> bool:
    return "/records/" in name and name.endswith(".json")


def with_central_entry(
    bundle: Path,
    out: Path,
    change: Callable[[bytes, bytes, bytes], tuple[bytes, bytes]],
    box: Box,
) -> str:
    """Rewrite the first record's central directory entry: `change(name, extra, comment)`
    gives its new (extra, comment); the end record follows the directory's new size."""
    data = bundle.read_bytes()
    end_at = data.rindex(_END)
    (start_dir,) = struct.unpack_from("<I", data, end_at + 16)
    entries, at, changed = [], start_dir, ""
    while data[at : at + 4] == _CENTRAL:
        name_len, extra_len, comment_len = struct.unpack_from("<3H", data, at + 28)
        head, at_name = bytearray(data[at : at + 46]), at + 46
        name = data[at_name : at_name + name_len]
        extra = data[at_name + name_len : at_name + name_len + extra_len]
        comment = data[
            at_name + name_len + extra_len : at_name + name_len + extra_len + comment_len
        ]
        if not changed and _record_member(name.decode()):
            extra, comment = change(name, extra, comment)
            struct.pack_into("<2H", head, 30, len(extra), len(comment))
            changed = name.decode()
        entries.append(bytes(head) + name + extra + comment)
        at = at_name + name_len + extra_len + comment_len
    assert at == end_at and changed
    directory = b"".join(entries)
    end = bytearray(data[end_at:])
    struct.pack_into("<I", end, 12, len(directory))
    out.write_bytes(data[:start_dir] + directory + bytes(end))
    seal_container(out, box.archive.signing_key)
    return changed.split("/", 1)[1]


def test_a_comment_shorter_than_the_seal_is_refused(
    box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genuine = export(box, tmp_path / "export.zip")
    assert verify_bundle(genuine).ok
    data = genuine.read_bytes()
    end_at = data.rindex(_END)
    assert len(data) - end_at - 22 == SEAL_BYTES  # what the box writes: the seal, whole
    short = 10
    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(
        data[: end_at + 20] + struct.pack("<H", short) + data[end_at + 22 :][:short]
    )

    report = verify_bundle(tampered)
    assert not report.ok
    messages = [p.message for p in report.problems if p.file == "tampered.zip"]
    start = end_at + 22
    assert any(
        f"bytes {start} to {start + short} of the file, the zip comment, are shorter than the"
        " container seal"
        in m
        and f"les octets {start} à {start + short} du fichier, le commentaire du zip" in m
        for m in messages
    ), messages
    assert verify_main([str(tampered)]) == 1
    assert "must not be trusted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "english", "french"),
    [
        (
            lambda name, extra, comment: (extra, b"voir la piece jointe cachee"),
            "carries a zip comment of 27 bytes: the members of a sealed bundle carry none",
            "porte un commentaire zip de 27 octets",
        ),
        (
            lambda name, extra, comment: (extra + struct.pack("<HH", 0xCAFE, 4) + b"data", comment),
            "carries a zip extra field of type 0xcafe: the members of a sealed bundle carry only"
            " zip64 sizes",
            "porte un champ supplémentaire zip de type 0xcafe",
        ),
    ],
    ids=["member comment", "extra field"],
)
def test_a_member_comment_or_foreign_extra_field_is_refused_naming_the_member(
    box: Box,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[bytes, bytes, bytes], tuple[bytes, bytes]],
    english: str,
    french: str,
) -> None:
    genuine = export(box, tmp_path / "export.zip")
    tampered = tmp_path / "tampered.zip"
    member = with_central_entry(genuine, tampered, change, box)

    report = verify_bundle(tampered)
    assert not report.ok
    (problem,) = report.problems  # the seal is the box's own: only the rule catches it
    assert problem.file == member
    assert english in problem.message and french in problem.message
    assert verify_main([str(tampered)]) == 1
    out = capsys.readouterr().out
    assert f"FAILED  {member}: porte un" in out
