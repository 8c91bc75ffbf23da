"""The TrueType fonts an export's PDF embeds, read once per process (pdf_stream.py
writes them; truetype.py reads their tables)."""

from __future__ import annotations

import functools
import sys
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

from strongroom.office.pdf_notation import Notation
from strongroom.office.truetype import font_facts


@dataclass(frozen=True)
class TrueType:
    """What the writer needs of one TrueType file, read once per process."""

    name: str
    glyphs: dict[str, tuple[int, int]]  # character -> (glyph id, advance in 1/1000 em)
    bbox: tuple[int, int, int, int]  # in 1/1000 em
    ascent: int
    descent: int
    cap_height: int
    file_length: int
    compressed: bytes

    @functools.cached_property
    def cid_to_gid(self) -> bytes:
        """CIDToGIDMap: the text's codes are its UTF-16 code units (code points of the
        Basic Multilingual Plane), mapped here to glyphs, two bytes each, big-endian."""
        table = array("H", bytes(2 * 0x10000))
        for char, (gid, _) in self.glyphs.items():
            if ord(char) < 0x10000:
                table[ord(char)] = gid
        if sys.byteorder == "little":
            table.byteswap()
        return table.tobytes()

    @functools.cached_property
    def notation(self) -> Notation:
        """Characters this font has no glyph for (or beyond the BMP, which the
        CIDToGIDMap cannot reach) are written as their code point."""
        return Notation(c for c in self.glyphs if ord(c) < 0x10000)

    @functools.cached_property
    def cid_widths(self) -> bytes:
        """The W array's body: runs of consecutive code points, `first [w w ...]`."""
        points = sorted((ord(c), w) for c, (_, w) in self.glyphs.items() if ord(c) < 0x10000)
        runs: list[bytes] = []
        run: list[int] = []
        first = previous = -2
        for point, width in points:
            if point != previous + 1 and run:
                runs.append(b"%d [%s]" % (first, b" ".join(b"%d" % w for w in run)))
                run = []
            if not run:
                first = point
            run.append(width)
            previous = point
        if run:
            runs.append(b"%d [%s]" % (first, b" ".join(b"%d" % w for w in run)))
        return b" ".join(runs)


@functools.lru_cache(maxsize=4)
def load_truetype(path: Path) -> TrueType:
    raw = path.read_bytes()
    font = font_facts(raw, path)  # the tables read with struct (truetype.py says why)
    scale = 1000 / font.units_per_em
    x0, y0, x1, y1 = font.bbox
    glyphs = {
        chr(code): (glyph, round(advance * scale))
        for code, (glyph, advance) in font.glyphs.items()
        if code <= 0x10FFFF
    }
    return TrueType(
        name=str(font.name or path.stem).replace(" ", ""),
        glyphs=glyphs,
        bbox=(round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale)),
        ascent=round(font.ascent * scale),
        descent=round(font.descent * scale),
        cap_height=round((font.cap_height or font.ascent) * scale),
        file_length=len(raw),
        # Level 1: 10 ms a font against 21 (once per process, so once per bench
        # export) for 5 % more bytes; still FlateDecode, which every reader inflates.
        compressed=zlib.compress(raw, 1),
    )
