"""support.pdf reads back what fpdf2 wrote, so the PDF assertions elsewhere mean something
(an extractor returning nothing would make every `not in` check pass)."""

from __future__ import annotations

import pytest
from fpdf import FPDF

from strongroom.office.bundle_pdf import DEJAVU_DIR
from support.pdf import pdf_text, pdf_words

FRENCH = "Intègre / intact — « arrêt de travail », œuvre, naïve, Noël"


def make_pdf(font: str, lines: list[str]) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    if font == "DejaVu":
        pdf.add_font("DejaVu", "", str(DEJAVU_DIR / "DejaVuSans.ttf"))
    pdf.set_font(font, "", 11)
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@pytest.mark.skipif(not DEJAVU_DIR.is_dir(), reason="fonts-dejavu-core is not installed")
def test_embedded_unicode_font_text_is_read_back() -> None:
    data = make_pdf("DejaVu", [FRENCH, "(parenthèses) et \\ barre"])
    assert pdf_text(data).split("\n") == [FRENCH, "(parenthèses) et \\ barre"]


def test_core_font_text_is_read_back() -> None:
    data = make_pdf("helvetica", ["Dossier medical (20 ans)", "Tribunal judiciaire de Lyon"])
    assert pdf_text(data).split("\n") == ["Dossier medical (20 ans)", "Tribunal judiciaire de Lyon"]


def test_wrapped_lines_are_found_whole_and_absent_text_is_absent() -> None:
    long = " ".join(["Reponse sur plusieurs lignes du dossier Martin"] * 8)
    data = make_pdf("helvetica", [long])
    assert "\n" in pdf_text(data)  # fpdf2 wrapped it over several lines
    assert long in pdf_words(data)
    assert "Autre client" not in pdf_words(data)


def test_not_a_pdf_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PDF"):
        pdf_text(b"<html>")
