"""The few facts an export's PDF needs of a TrueType file, read with `struct` alone.

`pdf_fonts.load_truetype` used fontTools for them: its first call in a process
(the first export after the box starts, the one `make bench` times) spent about
70 ms importing fontTools' table modules (the `name` table alone pulls in the
OpenType layout tables) and decoding `post` and `hmtx` glyph by glyph, for a
character map and the advances. Read here from the tables' bytes, they take a
few milliseconds and no module. Anything this reader does not know (a missing
table, a character map in another format, a name it cannot decode) gives None
and fontTools reads the font as before; tests/test_pdf_truetype.py compares the
two on every DejaVu face.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

# getBestCmap's preference (fontTools): Unicode full repertoire first, then BMP.
_CMAP_ORDER = ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 2), (0, 1), (0, 0))
_ENGLISH = ((1, 0), (3, 0x409))  # (platform, language) getDebugName prefers


@dataclass(frozen=True)
class FontFacts:
    units_per_em: int
    glyphs: dict[int, tuple[int, int]]  # code point -> (glyph id, advance in font units)
    bbox: tuple[int, int, int, int]  # font units
    ascent: int
    descent: int
    cap_height: int  # 0 when the OS/2 table has none (version < 2)
    name: str | None  # PostScript name (name id 6), None if none


class _Unknown(Exception):
    """Something this reader leaves to fontTools."""


def _tables(raw: bytes) -> dict[bytes, memoryview]:
    view = memoryview(raw)
    if len(raw) < 12:
        raise _Unknown
    (count,) = struct.unpack_from(">H", raw, 4)
    tables: dict[bytes, memoryview] = {}
    for i in range(count):
        tag, _, offset, length = struct.unpack_from(">4sLLL", raw, 12 + 16 * i)
        if offset + length > len(raw):
            raise _Unknown
        tables[tag] = view[offset : offset + length]
    return tables


def _cmap(table: memoryview) -> dict[int, int]:
    data = bytes(table)
    (count,) = struct.unpack_from(">H", data, 2)
    subtables: dict[tuple[int, int], int] = {}
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHL", data, 4 + 8 * i)
        subtables.setdefault((platform, encoding), offset)
    for key in _CMAP_ORDER:
        if key in subtables:
            offset = subtables[key]
            (fmt,) = struct.unpack_from(">H", data, offset)
            if fmt == 12:
                return _format12(data, offset)
            if fmt == 4:
                return _format4(data, offset)
            raise _Unknown  # the best subtable is one this reader does not parse
    raise _Unknown


def _format12(data: bytes, offset: int) -> dict[int, int]:
    (groups,) = struct.unpack_from(">L", data, offset + 12)
    found: dict[int, int] = {}
    for i in range(groups):
        start, end, glyph = struct.unpack_from(">LLL", data, offset + 16 + 12 * i)
        for code in range(start, end + 1):
            if glyph + code - start:  # glyph 0 is .notdef: fontTools leaves such codes out
                found[code] = glyph + code - start
    return found


def _format4(data: bytes, offset: int) -> dict[int, int]:
    (segments,) = struct.unpack_from(">H", data, offset + 6)
    segments //= 2
    ends = struct.unpack_from(f">{segments}H", data, offset + 14)
    base = offset + 16 + 2 * segments
    starts = struct.unpack_from(f">{segments}H", data, base)
    deltas = struct.unpack_from(f">{segments}h", data, base + 2 * segments)
    range_at = base + 4 * segments
    ranges = struct.unpack_from(f">{segments}H", data, range_at)
    found: dict[int, int] = {}
    for i in range(segments - 1):  # the last segment only closes the table (0xFFFF)
        start, end, delta, ranged = starts[i], ends[i], deltas[i], ranges[i]
        for code in range(start, end + 1):
            if ranged == 0:
                glyph = (code + delta) & 0xFFFF
            else:
                at = range_at + 2 * i + ranged + 2 * (code - start)
                (glyph,) = struct.unpack_from(">H", data, at)
                if glyph:
                    glyph = (glyph + delta) & 0xFFFF
            if glyph:  # glyph 0 is .notdef: fontTools leaves such codes out
                found[code] = glyph
    return found


def _advances(hmtx: memoryview, metrics: int, glyphs: int) -> array[int]:
    pairs = array("H", bytes(hmtx[: 4 * metrics]))
    if pairs.itemsize != 2 or len(pairs) != 2 * metrics:
        raise _Unknown
    if array("H", b"\x00\x01")[0] != 1:  # little-endian machine: the file is big-endian
        pairs.byteswap()
    advances = pairs[0::2]
    if glyphs > metrics:  # the last advance stands for the glyphs after it
        advances.extend([advances[-1]] * (glyphs - metrics))
    return advances


def _name(table: memoryview) -> str | None:
    data = bytes(table)
    _, count, strings = struct.unpack_from(">HHH", data, 0)
    some = None
    for i in range(count):
        platform, encoding, language, name_id, length, offset = struct.unpack_from(
            ">6H", data, 6 + 12 * i
        )
        if name_id != 6:
            continue
        raw = data[strings + offset : strings + offset + length]
        if platform in (0, 3):
            text = raw.decode("utf-16-be")
        elif platform == 1 and encoding == 0:
            text = raw.decode("mac_roman")
        else:
            raise _Unknown
        some = text
        if (platform, language) in _ENGLISH:
            return text
    return some


def font_facts(raw: bytes, path: Path) -> FontFacts:
    """The font's facts, read here or (a font this reader does not know) by fontTools."""
    return read_font(raw) or read_with_fonttools(path)


def read_with_fonttools(path: Path) -> FontFacts:
    """The same facts as fontTools reads them (what `load_truetype` did before)."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), lazy=True)
    metrics = font["hmtx"].metrics
    head, hhea = font["head"], font["hhea"]
    return FontFacts(
        units_per_em=int(head.unitsPerEm),
        glyphs={
            code: (font.getGlyphID(name), int(metrics[name][0]))
            for code, name in font.getBestCmap().items()
        },
        bbox=(head.xMin, head.yMin, head.xMax, head.yMax),
        ascent=hhea.ascent,
        descent=hhea.descent,
        cap_height=getattr(font["OS/2"], "sCapHeight", 0),
        name=font["name"].getDebugName(6),
    )


def read_font(raw: bytes) -> FontFacts | None:
    """What `load_truetype` needs of the font file `raw`, or None (then use fontTools)."""
    try:
        tables = _tables(raw)
        head, hhea, maxp = tables[b"head"], tables[b"hhea"], tables[b"maxp"]
        os2, hmtx = tables[b"OS/2"], tables[b"hmtx"]
        units = struct.unpack_from(">H", head, 18)[0]
        bbox = struct.unpack_from(">4h", head, 36)
        ascent, descent = struct.unpack_from(">hh", hhea, 4)
        (metrics,) = struct.unpack_from(">H", hhea, 34)
        (glyphs,) = struct.unpack_from(">H", maxp, 4)
        (version,) = struct.unpack_from(">H", os2, 0)
        cap = struct.unpack_from(">h", os2, 88)[0] if version >= 2 else 0
        advances = _advances(hmtx, metrics, glyphs)
        cmap = _cmap(tables[b"cmap"])
        if any(glyph >= glyphs for glyph in cmap.values()) or not units:
            raise _Unknown
        name = _name(tables[b"name"]) if b"name" in tables else None
    except (_Unknown, KeyError, struct.error, UnicodeDecodeError, IndexError):
        return None
    return FontFacts(
        units_per_em=units,
        glyphs={code: (glyph, advances[glyph]) for code, glyph in cmap.items()},
        bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
        ascent=ascent,
        descent=descent,
        cap_height=cap,
        name=name,
    )
