"""A character the export PDF's font cannot show (an emoji, a rare CJK ideograph) is
written as its code point, `[U+1F600]`, never as a replacement mark or an empty box a
lawyer could take for the message; the PDF's header says what the notation means, and
the JSON records and the HTML page keep the exact text. Read back with pdftotext from a
real sealed export."""

from __future__ import annotations

import html
import json
import subprocess
import zipfile
from pathlib import Path

from strongroom.office.export import ExportRequest, ExportScope, export_bundle
from strongroom.office.pdf_notation import NOTATION_LEGEND
from test_office_support import DAY_MS, T0, Box, conversation_id, new_box, new_phone, say

EXACT = "Rendez-vous confirmé 😀 à 14h, dossier 𠀋 et 漢字"
WRITTEN = "Rendez-vous confirmé [U+1F600] à 14h, dossier [U+2000B] et [U+6F22][U+5B57]"
# Typed by a person: the notation's own opening is written so it cannot be mistaken.
LITERAL = "Il a écrit [U+1F600] en toutes lettres"
LITERAL_WRITTEN = "Il a écrit [U+005B]U+1F600] en toutes lettres"


def _export_read(box: Box, tmp_path: Path) -> tuple[str, list[str], str]:
    """Export the box's conversation, close the box; the PDF's text as pdftotext reads
    it (whitespace folded), the JSON records and the HTML page."""
    try:
        scope = ExportScope("conversation", conversation_id=conversation_id(box))
        request = ExportRequest(scope, "me.durand", "Tribunal judiciaire", "RG 24/1")
        out = export_bundle(box.archive, request, tmp_path / "e.zip").path
        assert out is not None
    finally:
        box.close()
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        pdf = zf.read(next(n for n in names if n.endswith("/records.pdf")))
        page = html.unescape(
            zf.read(next(n for n in names if n.endswith("/records.html"))).decode()
        )
        records = [
            json.dumps(json.loads(zf.read(n)), ensure_ascii=False)
            for n in names
            if "/records/" in n and n.endswith(".json")
        ]
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    return " ".join(text.split()), records, page


def test_what_the_font_cannot_show_is_written_as_its_code_point(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive, owner="maitre.durand", name="Pixel 😀")
        say(box, phone, EXACT, at=T0)
        say(box, phone, LITERAL, at=T0 + DAY_MS)
    except BaseException:
        box.close()
        raise
    text, records, page = _export_read(box, tmp_path)

    assert WRITTEN in text
    assert LITERAL_WRITTEN in text
    assert "Pixel [U+1F600]" in text  # the facts lines too (the phone's name)
    assert "\ufffd" not in text and "😀" not in text and "漢" not in text
    assert " ".join(NOTATION_LEGEND.split()) in text  # the header says what it means
    # The exact text stays where it is kept: the records and the HTML page.
    assert any(EXACT in r for r in records) and any(LITERAL in r for r in records)
    assert EXACT in page and LITERAL in page and "[U+" not in page.replace(LITERAL, "")


# Invisible in a PDF, or a mere space: a soft hyphen, a zero-width space and joiner, a
# right-to-left mark; a tab stays a space.
INVISIBLE = "Dé\u00adcla\u200bra\u200dtion \u200fsignée\tle 3"
INVISIBLE_WRITTEN = "Dé[U+00AD]cla[U+200B]ra[U+200D]tion [U+200F]signée le 3"


def test_control_and_format_characters_are_written_as_their_code_points(
    tmp_path: Path,
) -> None:
    box = new_box(tmp_path)
    try:
        phone = new_phone(box.archive, owner="maitre.durand", name="Pixel\u200b 8")
        say(box, phone, INVISIBLE, at=T0)
    except BaseException:
        box.close()
        raise
    text, records, _page = _export_read(box, tmp_path)

    assert INVISIBLE_WRITTEN in text
    assert "Pixel[U+200B] 8" in text  # the facts lines too
    assert "[U+005B]" not in text  # the notation is not itself escaped
    # The exact text stays in the records (JSON escapes the tab).
    assert any(INVISIBLE.replace("\t", "\\t") in r for r in records)
