"""What an export's PDF writes for a character its font cannot show.

DejaVu Sans has no emoji and few CJK ideographs, and the PDF's codes reach only
the Basic Multilingual Plane. A replacement mark (U+FFFD) or an empty box in a
court bundle could be read as the message itself; `[U+1F600]` cannot, and the
PDF's header (`NOTATION_LEGEND`) says what it means. The JSON records and the
HTML page keep the exact text.

Control and format characters (a soft hyphen, a zero-width space or joiner, a
bidi mark; not a newline, and a tab is a space) are written in the notation too,
even when the font has a glyph: invisible on the page, they would be read as
nothing or as a space.

The notation is unambiguous: a literal `[U+` in a message is written
`[U+005B]U+` (its bracket as a notation), so every `[U+…]` in the PDF stands
for one character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from unicodedata import category

NOTATION_LEGEND = (
    "Caractères / characters : [U+XXXX] = un caractère que la police de ce PDF ne peut pas"
    " afficher (émoji, idéogramme rare, caractère invisible ou de contrôle…), noté par son"
    " code Unicode ; le texte exact est dans records/*.json et records.html / a character"
    " this PDF's font cannot show (emoji, rare ideograph, invisible or control character…),"
    " written as its Unicode code point; the exact text is in records/*.json and records.html"
)

# The GDPR register's PDF (office/report_render.py): its exact text is the web page's.
# Written as it is, also in the core-font fallback: Latin-1 only (no "…").
REGISTER_NOTATION_LEGEND = (
    "[U+XXXX] = un caractère que la police de ce PDF ne peut pas afficher (émoji,"
    " idéogramme rare...), noté par son code Unicode ; le registre de l'interface web"
    " (Registre RGPD) a le texte exact / a character this PDF's font cannot show (emoji, rare"
    " ideograph...), written as its Unicode code point; the web UI's register (GDPR register)"
    " has the exact text"
)


def _char_class(points: list[int]) -> str:
    """A regex character class body for the sorted code points, as ranges."""
    parts: list[str] = []
    start = previous = points[0]
    for point in [*points[1:], -1]:
        if point == previous + 1:
            previous = point
            continue
        parts.append(
            f"\\U{start:08x}" if start == previous else f"\\U{start:08x}-\\U{previous:08x}"
        )
        start = previous = point
    return "".join(parts)


class Notation:
    """Writes what is not in `shown`, and every control or format character, as
    `[U+XXXX]` (newlines are always kept)."""

    def __init__(self, shown: Iterable[str]) -> None:
        # Control and format characters are always written as the notation, even when
        # the font has a glyph for them: a soft hyphen, a zero-width joiner or a bidi
        # mark is invisible, or a mere space, on the page (pdf_wrap.printable).
        points = sorted({ord(c) for c in shown if category(c)[0] != "C"} | {ord("\n")})
        # One search in C finds the first character to rewrite, or a literal "[U+";
        # the usual text (every character shown) is returned as it came.
        self._pattern = re.compile(f"\\[U\\+|[^{_char_class(points)}]")
        # `unshown(text) is None and "[U+" not in text`: `apply` (and `printable`: tabs and
        # CRs are control characters) would return the text as it came. Three times
        # faster than the pattern above, whose alternative keeps `re` from scanning
        # for its character class in C (an export's PDF asks it of every line).
        self.unshown = re.compile(f"[^{_char_class(points)}]").search

    @classmethod
    def for_codec(cls, codec: str) -> Notation:
        """The characters a single-byte codec can encode (the core-font fallback)."""
        shown = []
        for byte in range(256):
            try:
                shown.append(bytes([byte]).decode(codec))
            except UnicodeDecodeError:
                continue
        return cls(shown)

    def apply(self, text: str) -> str:
        if self._pattern.search(text) is None:
            return text
        return self._pattern.sub(_written, text)


def _written(found: re.Match[str]) -> str:
    char = found.group()
    if char == "[U+":
        return "[U+005B]U+"
    return f"[U+{ord(char):04X}]"
