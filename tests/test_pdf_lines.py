"""The export PDF's lines are its paragraphs cleaned (`[U+XXXX]` for what the font cannot
show) and wrapped to the page, whatever shortcut the writer takes for the usual line
(pdf_stream.StreamingPdf._lines): the text a court reads is the same."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.office.bundle_pdf import DEJAVU_DIR
from strongroom.office.pdf_stream import WIDTH, StreamingPdf, _Font
from strongroom.office.pdf_wrap import wrap_measured, wrap_words

PIECES = [
    *"abcdefghij klmnop  éèà°«»[]U+W.,-",
    "\t", "\r\n", "\r", "\n", "\x00", "\u00ad", "\u200b", "😀", "ẞ", "ﬁ", "中", "(", ")", "\\",
    "[U+", "[U+1F600]", "x" * 130, " " * 30, "anticonstitutionnellement ",
]  # fmt: skip


def reference(font: _Font, size: float, text: str) -> list[str]:
    """Clean, then wrap (or keep whole if it fits): the rule, step by step."""
    text = font.clean(text)
    limit = WIDTH / size
    if "\n" not in text and font.line_width(text) <= limit * 1000:
        return [text]
    return wrap_measured(text, limit * 1000, font.advances) or wrap_words(text, limit, font.width)


def shown_lines(pdf_bytes: bytes, encode_many: list[bytes]) -> None:
    """Each encoded line appears as a text operand, in order."""
    at = 0
    for operand in encode_many:
        found = pdf_bytes.find(b" Td " + operand + b" Tj ET\n", at)
        assert found >= 0, operand
        at = found + 1


@pytest.mark.parametrize("font_dir", [DEJAVU_DIR, Path("/nonexistent")], ids=["dejavu", "core"])
@given(
    st.lists(st.sampled_from(PIECES), max_size=60).map("".join),
    st.sampled_from([7, 8, 10]),
)
@settings(max_examples=150, deadline=None)
def test_a_paragraph_is_written_as_cleaned_and_wrapped(
    font_dir: Path, text: str, size: int
) -> None:
    out = io.BytesIO()
    pdf = StreamingPdf(out, "t", [], font_dir)
    font = pdf._regular
    before = len(re.findall(rb" Tj ET\n", b"".join(pdf._page)))
    pdf._lines(font, size, (text,), 5)
    pdf.close()
    written = out.getvalue()
    expected = reference(font, size, text)
    assert len(re.findall(rb" Tj ET\n", written)) == before + len(expected)
    shown_lines(written, [font.encode(line) for line in expected])
