"""The export PDF's fonts read with `struct` (office/truetype.py) give the facts, and so
the PDF bytes, that fontTools gave: the same glyphs, advances, box and name."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from strongroom.office import pdf_fonts, pdf_stream, truetype
from strongroom.office.bundle_pdf import DEJAVU_DIR, RenderedRecord
from strongroom.office.truetype import read_font, read_with_fonttools

FONTS = sorted(DEJAVU_DIR.glob("*.ttf"))
REGULAR = DEJAVU_DIR / "DejaVuSans.ttf"


def test_the_box_has_the_fonts_exports_embed() -> None:
    # fonts-dejavu-core is a dependency of the appliance (hardware.md): without it the
    # comparisons below would compare nothing.
    assert REGULAR in FONTS and (DEJAVU_DIR / "DejaVuSans-Bold.ttf") in FONTS


@pytest.mark.parametrize("path", FONTS, ids=lambda p: p.name)
def test_every_dejavu_face_reads_as_fonttools_reads_it(path: Path) -> None:
    assert read_font(path.read_bytes()) == read_with_fonttools(path)


def test_each_character_map_format_reads_as_fonttools_reads_it() -> None:
    """DejaVu Sans has both formats the reader knows (4: the BMP, 12: all of Unicode)."""
    raw = REGULAR.read_bytes()
    data = bytes(truetype._tables(raw)[b"cmap"])
    font = TTFont(str(REGULAR), lazy=True)
    (count,) = struct.unpack_from(">H", data, 2)
    seen = set()
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHL", data, 4 + 8 * i)
        (fmt,) = struct.unpack_from(">H", data, offset)
        if fmt not in (4, 12):
            continue
        seen.add(fmt)
        parse = truetype._format4 if fmt == 4 else truetype._format12
        expected = {
            code: font.getGlyphID(name)
            for code, name in font["cmap"].getcmap(platform, encoding).cmap.items()
        }
        assert parse(data, offset) == expected, (platform, encoding, fmt)
    assert seen == {4, 12}


def test_what_the_reader_does_not_know_goes_to_fonttools(tmp_path: Path) -> None:
    raw = REGULAR.read_bytes()
    assert read_font(b"not a font") is None
    assert read_font(raw[:4096]) is None  # tables past the end of the bytes
    # The best character map in a format the reader does not parse (format 12 -> 13):
    data = bytearray(raw)
    cmap_at = bytes(raw).index(b"cmap", 12, 12 + 16 * 30)
    (cmap_offset,) = struct.unpack_from(">L", raw, cmap_at + 8)
    (count,) = struct.unpack_from(">H", raw, cmap_offset + 2)
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHL", raw, cmap_offset + 4 + 8 * i)
        if (platform, encoding) == (3, 10):
            struct.pack_into(">H", data, cmap_offset + offset, 13)
    assert read_font(bytes(data)) is None
    odd = tmp_path / "odd.ttf"
    odd.write_bytes(bytes(data))
    facts = truetype.font_facts(bytes(data), odd)  # fontTools reads it, as before
    assert facts == read_with_fonttools(odd)


def _pdf_bytes() -> bytes:
    out = io.BytesIO()
    pdf = pdf_stream.StreamingPdf(out, "Export Strongroom — Conversation", [("Date", "x")])
    for n in range(40):
        pdf.add_record(
            RenderedRecord(
                log_index=n,
                kind="message",
                sent_at=1_700_000_000_000 + n,
                sender="Maître Durand",
                direction="out",
                text=f"réunion n°{n} → tribunal, 😀 ẞ ﬁ " * (n % 7 + 1),
                conversation="a ↔ b",
                detail="",
            )
        )
    pdf.close()
    return out.getvalue()


def test_an_export_pdf_is_the_same_bytes_as_with_fonttools(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pdf_fonts.load_truetype.cache_clear()
    ours = _pdf_bytes()
    monkeypatch.setattr(pdf_fonts, "font_facts", lambda raw, path: read_with_fonttools(path))
    pdf_fonts.load_truetype.cache_clear()
    try:
        theirs = _pdf_bytes()
    finally:
        pdf_fonts.load_truetype.cache_clear()
    assert ours == theirs
    assert b"/FontFile2" in ours and b"DejaVuSans-Bold" in ours


def test_an_export_pdf_does_not_load_fonttools() -> None:
    """fontTools' table modules were most of a box's first export's font set-up (and
    memory it kept): the PDF is written without importing them."""
    code = (
        "import io, sys; from strongroom.office.pdf_stream import StreamingPdf;"
        "p = StreamingPdf(io.BytesIO(), 't', []); p.close();"
        "print('fontTools' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
