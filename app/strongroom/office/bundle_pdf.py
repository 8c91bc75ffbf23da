"""Human-readable renderings of records: streaming HTML and a PDF made with fpdf2.

French accents (and most of Unicode) need a TrueType font embedded in the PDF.
We use DejaVu Sans from the Debian package ``fonts-dejavu-core``
(/usr/share/fonts/truetype/dejavu), present on Raspberry Pi OS. fpdf2 bundles no
TTF, so without that package we fall back to the core Helvetica font (accented
French letters still render). A character the font cannot show (an emoji, a CJK
ideograph in a name typed on a phone) is written `[U+XXXX]`, as in an export's PDF
(office/pdf_notation.py), never an empty box or a "?" that could be read as the text.
"""

from __future__ import annotations

import functools
import html
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from strongroom.gc_settle import collect_now
from strongroom.office.pdf_notation import Notation
from strongroom.office.pdf_wrap import printable, wrap_words

DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_PACKAGE = "fonts-dejavu-core"


@dataclass(slots=True)
class RenderedRecord:
    """What a reader needs to see of one record.

    Not frozen: a frozen dataclass sets each of its 15 fields through
    object.__setattr__ (~5 µs a record against ~1), and an export makes two per
    record (its HTML pass and its PDF pass). Nothing changes one once made."""

    log_index: int
    kind: str
    sent_at: int
    sender: str
    direction: str
    text: str
    conversation: str
    detail: str  # attachment name/size, receipt, edited message…
    recipient: str = ""
    direction_label: str = ""  # "envoyé / sent", "reçu / received"
    device: str = ""  # the phone that recorded it: name (owner)
    phone_time: str = ""  # the phone's time, local and UTC
    box_time: str = ""  # when the box received it, local and UTC
    attachment: str | None = None  # the attachment's path inside the bundle
    gap: bool = False  # a destroyed record: only its place remains

    def heading(self) -> str:
        """The line above the text: number, kind, who → whom, direction."""
        kind = _KIND_FR.get(self.kind, self.kind)
        if self.gap:
            return f"#{self.log_index} · {kind} · [détruit / destroyed] · {self.conversation}"
        who = f"{self.sender} → {self.recipient}" if self.recipient else self.sender
        parts = [f"#{self.log_index}", kind, who, self.direction_label or self.direction]
        return " · ".join(p for p in parts if p)

    def facts(self) -> list[str]:
        """Times and recording device, one fact a line (the same in HTML and PDF)."""
        lines = []
        if self.phone_time:
            lines.append(f"Heure du téléphone / phone time : {self.phone_time}")
        else:
            lines.append(f"Heure / time : {when(self.sent_at)}")
        if self.box_time:
            lines.append(f"Reçu par le boîtier / box time : {self.box_time}")
        if self.device:
            lines.append(f"Appareil / recording device : {self.device}")
        return lines


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_KIND_FR = {
    "message": "message",
    "edit": "modification",
    "deletion": "suppression",
    "receipt": "accusé",
    "attachment": "pièce jointe",
}


class ByteSink(Protocol):
    """Anything with write(bytes): a zip member, a file, a hashing writer."""

    def write(self, data: bytes, /) -> Any: ...


def write_html_head(out: ByteSink, title: str, meta: Iterable[tuple[str, str]]) -> None:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in meta)
    out.write(
        (
            '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table.meta th{text-align:left;padding-right:1em}"
            ".rec{border-top:1px solid #ccc;padding:.4em 0}.rec .h{color:#555;font-size:.85em}"
            ".out{margin-left:3em}.t{white-space:pre-wrap}"
            ".gap{background:#eee;color:#555;font-style:italic}"
            f"</style></head><body><h1>{html.escape(title)}</h1>"
            f'<table class="meta">{rows}</table>\n'
        ).encode()
    )


def write_html_record(out: ByteSink, record: RenderedRecord) -> None:
    detail = html.escape(record.detail)
    if record.attachment:
        # The bundle's own relative path, percent-encoded: a click opens the file.
        href = html.escape(urllib.parse.quote(record.attachment), quote=True)
        name = html.escape(record.attachment.split("/", 1)[-1].split("-", 1)[-1])
        detail += f' — <a href="{href}">{name}</a>'
    detail_div = f'<div class="d">{detail}</div>' if detail else ""
    facts = "".join(f"<div>{html.escape(line)}</div>" for line in record.facts())
    css = "rec gap" if record.gap else ("rec out" if record.direction == "out" else "rec")
    out.write(
        (
            f'<div class="{css}" id="L{record.log_index}"><div class="h">'
            f"<strong>{html.escape(record.heading())}</strong>{facts}</div>"
            f'<div class="t">{html.escape(record.text)}</div>{detail_div}</div>\n'
        ).encode()
    )


def write_html_tail(out: ByteSink) -> None:
    out.write(b"</body></html>\n")


@functools.lru_cache(maxsize=2)
def _font_notation(regular: Path, bold: Path) -> Notation:
    """What both faces can show (the codes reach the Basic Multilingual Plane only, as
    in an export's PDF); the rest is written as its code point."""
    from strongroom.office.pdf_fonts import load_truetype  # loaded when a PDF is made

    both = load_truetype(regular).glyphs.keys() & load_truetype(bold).glyphs.keys()
    return Notation(c for c in both if ord(c) < 0x10000)


class PdfRenderer:
    """Build a PDF of records one at a time (fpdf2 keeps pages in memory until output)."""

    def __init__(
        self,
        title: str,
        meta: Iterable[tuple[str, str]],
        font_dir: Path = DEJAVU_DIR,
        legend: tuple[str, str] | None = None,
    ) -> None:
        """`legend`: a last meta line saying what `[U+XXXX]` means, written as it is
        (its own `[U+XXXX]` is the notation's example, not a literal to escape)."""
        # Imported here, not at module load: fpdf2 (with PIL and fontTools) is ~36 MiB
        # of a started box's memory, and only this PDF uses it.
        from fpdf import FPDF

        pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        regular, bold = font_dir / "DejaVuSans.ttf", font_dir / "DejaVuSans-Bold.ttf"
        self.unicode = regular.is_file() and bold.is_file()
        if self.unicode:
            pdf.add_font("DejaVu", "", str(regular))
            pdf.add_font("DejaVu", "B", str(bold))
            self._family = "DejaVu"
            self._notation = _font_notation(regular, bold)
        else:
            self._family = "helvetica"
            self._notation = Notation.for_codec("latin-1")
        self._widths: dict[tuple[str, float, str], float] = {}
        pdf.set_title(title)
        pdf.set_creator("Strongroom")
        pdf.add_page()
        self.pdf = pdf
        self._font("B", 14)
        self._text(title, 8)
        self._font("", 9)
        for key, value in meta:
            self._text(f"{key} : {value}", 5)
        if legend is not None:
            self._text(f"{legend[0]} : {legend[1]}", 5, notated=False)
        pdf.ln(3)

    def _font(self, style: str, size: int) -> None:
        self.pdf.set_font(self._family, style, size)

    def _clean(self, text: str) -> str:
        return self._notation.apply(printable(text))

    def _width(self, word: str) -> float:
        key = (self.pdf.font_style, self.pdf.font_size_pt, word)
        width = self._widths.get(key)
        if width is None:
            if len(self._widths) > 50_000:
                self._widths.clear()
            width = self._widths[key] = self.pdf.get_string_width(word)
        return width

    def _text(self, text: str, height: float, *, notated: bool = True) -> None:
        pdf = self.pdf
        limit = pdf.w - pdf.l_margin - pdf.r_margin
        # Each word measured once (cached): fpdf2's multi_cell re-measured the whole line
        # at every character, which made a 10,000-message export take minutes.
        shown = self._clean(text) if notated else printable(text)
        for line in wrap_words(shown, limit, self._width):
            pdf.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")

    def add_record(self, record: RenderedRecord) -> None:
        self._font("B", 8)
        self._text(record.heading(), 4.5)
        self._font("", 7)
        for line in record.facts():
            self._text(line, 3.5)
        self._font("", 10)
        if record.text:
            self._text(record.text, 5)
        if record.detail:
            self._font("", 8)
            self._text(record.detail, 4.5)
        if record.attachment:
            self._font("", 8)
            self._text(f"Fichier / file : {record.attachment}", 4.5)
        self.pdf.ln(2)

    def add_heading(self, text: str) -> None:
        self._font("B", 12)
        self.pdf.ln(2)
        self._text(text, 7)
        self._font("", 10)

    def add_paragraph(self, text: str, size: int = 10) -> None:
        self._font("", size)
        self._text(text, 5)

    def output(self) -> bytes:
        """The PDF; the renderer is spent: its document, a heap of reference cycles,
        is freed now (gc_settle.collect_now)."""
        data = bytes(self.pdf.output())
        del self.pdf
        collect_now()
        return data
