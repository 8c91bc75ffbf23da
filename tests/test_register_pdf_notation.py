"""The GDPR register's PDF writes a character its font cannot show as `[U+XXXX]`, as an
export's PDF does, and says so in its header: an emoji in the DPO's name or an ideograph
in the address is neither an empty box nor a "?" that could be read as the text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from strongroom.office import report
from strongroom.office.bundle_pdf import DEJAVU_DIR
from strongroom.office.register_facts import CONTROLLER_ADDRESS, DPO, PRACTICE_NAME
from test_office_support import T0, new_box

DETAILS = {
    PRACTICE_NAME: "Cabinet Lœwy",
    CONTROLLER_ADDRESS: "3 rue 漢 [U+ Paix",  # an ideograph DejaVu lacks, a literal "[U+"
    DPO: "Me Dupont 😀",  # beyond the Basic Multilingual Plane
}


def text_of_pdf(pdf: bytes) -> str:
    done = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf,
                          capture_output=True, check=True)  # fmt: skip
    return " ".join(done.stdout.decode().split())


def register_pdf(tmp_path: Path, font_dir: Path) -> str:
    box = new_box(tmp_path)
    try:
        for key, text in DETAILS.items():
            box.archive.conn.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (key, text))
        register = report.build_register(
            box.archive.conn,
            now_ms=T0,
            data_dir=box.data_dir,
            box_public_key=box.keys.signing_public,
        )
        return text_of_pdf(report.render_pdf(register, font_dir))
    finally:
        box.close()


@pytest.mark.skipif(not DEJAVU_DIR.is_dir(), reason="fonts-dejavu-core is not installed")
def test_dejavu_register_writes_what_it_cannot_show_as_code_points(tmp_path: Path) -> None:
    text = register_pdf(tmp_path, DEJAVU_DIR)
    assert "Cabinet Lœwy" in text  # what the font has stays as typed
    assert "3 rue [U+6F22] [U+005B]U+ Paix" in text
    assert "Me Dupont [U+1F600]" in text
    assert "[U+XXXX] = un caractère que la police de ce PDF ne peut pas afficher" in text


def test_core_font_register_writes_what_latin1_lacks_as_code_points(tmp_path: Path) -> None:
    text = register_pdf(tmp_path, tmp_path / "no-fonts")  # no TrueType: Helvetica
    assert "Cabinet L[U+0153]wy" in text  # not "L?wy"
    assert "3 rue [U+6F22] [U+005B]U+ Paix" in text
    assert "Me Dupont [U+1F600]" in text
    assert "[U+XXXX] = un caractère que la police de ce PDF ne peut pas afficher" in text
