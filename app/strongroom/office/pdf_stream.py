"""A PDF written page by page into a byte sink: an export's records.pdf of any size.

Why not fpdf2 (measured): it keeps every page in memory until `output()`
(1.4 KB a record: 140 MiB for a 100,000-message matter, then a copy for the
output), and lays each line out through its general text engine, about
70 µs a line: half of a 10,000-message export's 10.2 s. This writer knows only
what an export needs (A4 pages of left-aligned text lines in two weights) and
sends each page to the sink as soon as it is full: its content stream and its
page object. The fonts, the page tree, the catalogue and the cross-reference
table come last, so memory holds one page and the offsets (8 bytes an
object). Content streams are not compressed here: the zip member is
deflated as a whole. pdftotext reads the result back in tests/test_export_readable.py.

Text uses DejaVu Sans (``fonts-dejavu-core``), embedded whole as a TrueType
CID font (Identity-H). A string's codes are its UTF-16 code units, written by
`str.encode` in C; a CIDToGIDMap maps them to the font's glyphs and an identity
ToUnicode map lets the text be searched, copied and read back by pdftotext.
The font file, that map and the widths are made once per process and reused.
Without the package the core Helvetica font is used (Windows-1252).

A character the font cannot show (an emoji, a rare CJK ideograph, anything beyond
the Basic Multilingual Plane) is written as its code point, `[U+1F600]`, and the
PDF's header says so: a reader must never see a replacement mark or an empty box
and take it for the message (records/*.json and records.html keep the exact
text). A literal `[U+` typed in a message is written `[U+005B]U+`, so every
`[U+…]` in the PDF is a notation (`pdf_notation.py`).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from strongroom.office.bundle_pdf import DEJAVU_DIR, RenderedRecord
from strongroom.office.pdf_fonts import TrueType, load_truetype
from strongroom.office.pdf_notation import NOTATION_LEGEND, Notation
from strongroom.office.pdf_wrap import printable, wrap_measured, wrap_words

MM = 72 / 25.4  # points per millimetre; the sizes below are fpdf2's, in mm
PAGE_W, PAGE_H = 595.28, 841.89  # A4
LEFT = RIGHT = TOP = 10 * MM
BOTTOM = 15 * MM
WIDTH = PAGE_W - LEFT - RIGHT

_CATALOG, _PAGES, _REGULAR, _BOLD = 1, 2, 3, 4  # reserved: pages refer to them
_FIRST_FREE = 5


class ByteSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class _Font:
    """One font as used in this document: encoding, widths, the glyphs it used."""

    def __init__(self, resource: str, truetype: TrueType | None, core: str) -> None:
        self.resource = resource
        self.truetype = truetype
        self.core = core
        self._widths: dict[str, float] = {}  # word -> width at size 1
        if truetype is None:
            from fpdf.fonts import CORE_FONTS_CHARWIDTHS

            self._core_widths: dict[str, int] = CORE_FONTS_CHARWIDTHS[core]
            self.advances = _Advances(self._core_widths)
            self.notation = Notation.for_codec("cp1252")
        else:
            self.advances = _Advances((c, w) for c, (_, w) in truetype.glyphs.items())
            self.notation = truetype.notation

    def clean(self, text: str) -> str:
        """The text as this font can show it: what it lacks written `[U+XXXX]`."""
        return self.notation.apply(printable(text))

    def advance(self, char: str) -> int:
        if self.truetype is None:
            return self._core_widths.get(char, 500)
        return self.truetype.glyphs.get(char, (0, 500))[1]

    def line_width(self, line: str) -> int:
        """A whole line's width at size 1, in 1/1000 em: one pass in C over its
        characters (spaces included), no Python call per word."""
        return sum(map(self.advances.__getitem__, line))

    def width(self, word: str) -> float:
        """The word's width at size 1 (multiply by the font size)."""
        found = self._widths.get(word)
        if found is None:
            if len(self._widths) > 8192:  # bounded: a long export has many words
                self._widths.clear()
            found = self._widths[word] = sum(map(self.advance, word)) / 1000
        return found

    def encode(self, line: str) -> bytes:
        """The line as a PDF string operand."""
        if self.truetype is None:
            raw = line.encode("cp1252", "replace")
            escaped = raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
            return b"(" + escaped + b")"
        # clean() left only characters of the font: all in the BMP, one code unit each.
        # A literal string's body (half the bytes of hex, for the zip to deflate):
        # backslash and parentheses escaped, and CR (a reader would take it for a line end).
        raw = line.encode("utf-16-be", "replace")
        return (
            b"("
            + raw.replace(b"\\", b"\\\\")
            .replace(b"(", b"\\(")
            .replace(b")", b"\\)")
            .replace(b"\r", b"\\r")
            + b")"
        )


class _Advances(dict[str, int]):
    """Character -> advance in 1/1000 em; a character the font lacks counts 500
    (what `_Font.advance` says), so a lookup never fails."""

    def __missing__(self, char: str) -> int:
        return 500


class StreamingPdf:
    """Lines of text, page after page, straight to `sink` (see the module doc)."""

    def __init__(
        self,
        sink: ByteSink,
        title: str,
        meta: Iterable[tuple[str, str]],
        font_dir: Path = DEJAVU_DIR,
    ) -> None:
        self._sink = sink
        self._offset = 0
        self._offsets = array("q", [0] * _FIRST_FREE)
        self._pages: list[int] = []
        self._page: list[bytes] = []
        self._y = TOP
        self._starts: dict[tuple[str, float], bytes] = {}
        regular, bold = font_dir / "DejaVuSans.ttf", font_dir / "DejaVuSans-Bold.ttf"
        self.unicode = regular.is_file() and bold.is_file()
        self._regular = _Font("F1", load_truetype(regular) if self.unicode else None, "helvetica")
        self._bold = _Font("F2", load_truetype(bold) if self.unicode else None, "helveticaB")
        self._title = title
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._lines(self._bold, 14, (title,), 8)
        self._lines(self._regular, 9, [f"{key} : {value}" for key, value in meta], 5)
        self._lines(self._regular, 9, (NOTATION_LEGEND,), 5, as_is=True)  # no message's
        self._y += 3 * MM

    # -- layout ---------------------------------------------------------------------

    def _lines(
        self,
        font: _Font,
        size: float,
        texts: Iterable[str],
        height_mm: float,
        *,
        as_is: bool = False,
    ) -> None:
        """Paragraphs in `font` at `size`, each wrapped to the page's width; `as_is`:
        our own text, every character in both fonts, not cleaned.

        A 10,000-message export writes ~65,000 lines here (a third of its time): the
        usual line (nothing to clean, fits the width) costs one regex search, one sum
        over its advances and one format, with no call per step."""
        height = height_mm * MM
        limit = WIDTH / size
        widest = limit * 1000
        start = self._starts.get((font.resource, size))
        if start is None:  # a handful of (font, size) pairs: formatted once each
            start = b"BT /%s %.2f Tf %.2f " % (font.resource.encode(), size, LEFT)
            self._starts[font.resource, size] = start
        unshown, advance, encode = font.notation.unshown, font.advances.__getitem__, font.encode
        long = widest // 400  # characters: a text this long seldom fits on one line
        half, lift, bottom = height / 2, 0.3 * size, PAGE_H - BOTTOM
        page, y = self._page, self._y
        for text in texts:
            # `clean` changes only what the notation finds (tabs and CRs among it).
            if not as_is and (unshown(text) is not None or "[U+" in text):
                text = font.clean(text)
            # Most lines fit: measured whole (its spaces are the words' gaps), not word
            # by word. A long text goes straight to wrap_measured, which measures it
            # once and gives it back whole if it fits.
            if len(text) < long and "\n" not in text and sum(map(advance, text)) <= widest:
                lines: Iterable[str] = (text,)
            else:
                lines = wrap_measured(text, widest, font.advances) or wrap_words(
                    text, limit, font.width
                )
            for line in lines:
                if y + height > bottom and page:
                    self._y = y
                    self._end_page()
                    page, y = self._page, self._y
                # fpdf2's cell: the baseline sits at mid-height plus 0.3 of the font size
                page.append(
                    b"%s%.2f Td %s Tj ET\n" % (start, PAGE_H - (y + half + lift), encode(line))
                )
                y += height
        self._y = y

    def add_record(self, record: RenderedRecord) -> None:
        regular = self._regular
        self._lines(self._bold, 8, (record.heading(),), 4.5)
        self._lines(regular, 7, record.facts(), 3.5)
        if record.text:
            self._lines(regular, 10, (record.text,), 5)
        if record.detail:
            self._lines(regular, 8, (record.detail,), 4.5)
        if record.attachment:
            self._lines(regular, 8, (f"Fichier / file : {record.attachment}",), 4.5)
        self._y += 2 * MM

    # -- objects --------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._sink.write(data)
        self._offset += len(data)

    def _new_object(self) -> int:
        self._offsets.append(0)
        return len(self._offsets) - 1

    def _object(self, number: int, body: bytes) -> None:
        self._offsets[number] = self._offset
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def _stream(self, number: int, data: bytes) -> None:
        # Not compressed here: the zip member is deflated as a whole, and compressing
        # each page first made the zip spend its time on incompressible bytes.
        self._offsets[number] = self._offset
        self._write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (number, len(data)))
        self._write(data)
        self._write(b"\nendstream\nendobj\n")

    def _end_page(self) -> None:
        content = self._new_object()
        self._stream(content, b"".join(self._page))
        page = self._new_object()
        fonts = b"/F1 %d 0 R /F2 %d 0 R" % (_REGULAR, _BOLD)
        self._object(
            page,
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f]"
            b" /Resources << /Font << %s >> >> /Contents %d 0 R >>"
            % (_PAGES, PAGE_W, PAGE_H, fonts, content),
        )
        self._pages.append(page)
        self._page = []
        self._y = TOP

    def close(self) -> None:
        """The last page, the fonts, the page tree and the cross-reference table."""
        if self._page or not self._pages:
            self._end_page()
        for number, font in ((_REGULAR, self._regular), (_BOLD, self._bold)):
            self._font_objects(number, font)
        info = self._new_object()
        self._object(
            info,
            b"<< /Title %s /Creator (Strongroom) /Producer (Strongroom) >>"
            % _text_string(self._title),
        )
        kids = b" ".join(b"%d 0 R" % p for p in self._pages)
        self._object(_PAGES, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self._pages)))
        self._object(_CATALOG, b"<< /Type /Catalog /Pages %d 0 R >>" % _PAGES)
        xref = self._offset
        rows = [b"xref\n0 %d\n0000000000 65535 f \n" % len(self._offsets)]
        rows += [b"%010d 00000 n \n" % offset for offset in self._offsets[1:]]
        self._write(b"".join(rows))
        self._write(
            b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(self._offsets), _CATALOG, info, xref)
        )

    def _font_objects(self, number: int, font: _Font) -> None:
        truetype = font.truetype
        if truetype is None:
            base = b"/Helvetica-Bold" if font.core.endswith("B") else b"/Helvetica"
            self._object(
                number,
                b"<< /Type /Font /Subtype /Type1 /BaseFont %s /Encoding /WinAnsiEncoding >>" % base,
            )
            return
        cid, descriptor, file, to_unicode, cid_map = (self._new_object() for _ in range(5))
        name = truetype.name.encode("ascii", "replace")
        self._object(
            number,
            b"<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H"
            b" /DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (name, cid, to_unicode),
        )
        self._object(
            cid,
            b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /%s"
            b" /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >>"
            b" /FontDescriptor %d 0 R /DW 500 /W [%s] /CIDToGIDMap %d 0 R >>"
            % (name, descriptor, truetype.cid_widths, cid_map),
        )
        self._object(
            descriptor,
            b"<< /Type /FontDescriptor /FontName /%s /Flags 32 /FontBBox [%d %d %d %d]"
            b" /ItalicAngle 0 /Ascent %d /Descent %d /CapHeight %d /StemV 80 /FontFile2 %d 0 R >>"
            % (name, *truetype.bbox, truetype.ascent, truetype.descent, truetype.cap_height, file),
        )
        self._offsets[file] = self._offset
        self._write(
            b"%d 0 obj\n<< /Length %d /Length1 %d /Filter /FlateDecode >>\nstream\n"
            % (file, len(truetype.compressed), truetype.file_length)
        )
        self._write(truetype.compressed)
        self._write(b"\nendstream\nendobj\n")
        self._stream(to_unicode, _TO_UNICODE)
        self._stream(cid_map, truetype.cid_to_gid)


def _text_string(text: str) -> bytes:
    """A PDF text string (UTF-16 with its byte order mark), as a hex operand."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


def _to_unicode_cmap() -> bytes:
    """Codes are UTF-16 code units: the identity, in ranges that keep their high byte."""
    ranges = b"".join(b"<%02X00> <%02XFF> <%02X00>\n" % (h, h, h) for h in range(256))
    blocks = (
        b"".join(
            b"100 beginbfrange\n%sendbfrange\n" % ranges[i * 100 * 21 : (i + 1) * 100 * 21]
            for i in range(2)
        )
        + b"56 beginbfrange\n%sendbfrange\n" % ranges[200 * 21 :]
    )
    return (
        b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + blocks
        + b"endcmap\nCMapName currentdict /CIDInit /ProcSet findresource /defineresource pop\n"
        b"end\nend\n"
    )


_TO_UNICODE = _to_unicode_cmap()
