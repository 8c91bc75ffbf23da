"""Text for the export PDF's lines: tabs as spaces, paragraphs wrapped to the
page's width (pdf_stream.py measures; these functions only cut)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from itertools import accumulate


def printable(text: str) -> str:
    """Tabs as spaces and CRLF as a newline. The other control and format characters (a
    soft hyphen, a zero-width space or joiner, a bidi mark) are left to the PDF's
    notation (pdf_notation.Notation), which writes them `[U+00AD]`: a space in their
    place would change the words a court reads, and nothing would say so."""
    if "\t" not in text and "\r" not in text:
        return text  # the usual case
    return text.replace("\r\n", "\n").replace("\t", " ")


def wrap_words(text: str, limit: float, width: Callable[[str], float]) -> list[str]:
    """Greedy word wrap; `width` measures a word (cache it: each is measured once)."""
    lines: list[str] = []
    space = width(" ")
    for paragraph in text.split("\n"):
        line: list[str] = []
        used = 0.0
        for word in paragraph.split(" "):
            size = width(word)
            while size > limit and len(word) > 1:  # a word wider than the page
                cut = len(word) - 1
                while cut > 1 and width(word[:cut]) > limit:
                    cut = max(1, cut * 3 // 4)
                if line:
                    lines.append(" ".join(line))
                    line, used = [], 0.0
                lines.append(word[:cut])
                word = word[cut:]
                size = width(word)
            grown = size if not line else used + space + size
            if line and grown > limit:
                lines.append(" ".join(line))
                line, used = [word], size
            else:
                line.append(word)
                used = grown
        lines.append(" ".join(line))
    return lines


def wrap_measured(text: str, limit: float, advances: Mapping[str, int]) -> list[str] | None:
    """`wrap_words`' lines, found from running sums of the characters' advances
    (`limit` and `advances` in 1/1000 em): a line is the text up to the last space
    that fits, found by bisection, not a Python step per word. None when a word is
    wider than the line: `wrap_words` then cuts it as it always did."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        sums = [0, *accumulate(map(advances.__getitem__, paragraph))]
        end, start = len(paragraph), 0
        while sums[end] - sums[start] > limit:
            fits = bisect_right(sums, sums[start] + limit) - 1  # paragraph[start:fits] fits
            space = paragraph.rfind(" ", start, fits + 1)
            if space < start:  # not found: a word wider than the line
                return None
            lines.append(paragraph[start:space])
            start = space + 1
        lines.append(paragraph[start:])
    return lines
