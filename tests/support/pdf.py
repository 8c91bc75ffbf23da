"""The text of a PDF written by fpdf2, for tests that must check what a PDF says.

A `%PDF` header proves nothing about the content; this reads the page content
streams back and maps the glyph codes to Unicode through each font's
ToUnicode CMap (embedded TrueType fonts, Identity-H) or WinAnsi (core fonts).
It handles what fpdf2 writes (the `Tj`/`TJ` operators, literal and hex
strings, Flate-compressed streams), not every PDF in the world.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_OBJ = re.compile(rb"(\d+) 0 obj\b")
_REF = re.compile(rb"/(\w+)\s+(\d+) 0 R")
_HEX_PAIR = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_HEX_RANGE = re.compile(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


@dataclass
class _Object:
    head: bytes  # the dictionary (or value) text
    stream: bytes | None


def _objects(data: bytes) -> dict[int, _Object]:
    objects: dict[int, _Object] = {}
    pos = 0
    while match := _OBJ.search(data, pos):
        start = match.end()
        end = data.find(b"endobj", start)
        stream_at = data.find(b"stream", start, end if end >= 0 else len(data))
        if stream_at < 0:
            objects[int(match.group(1))] = _Object(data[start:end], None)
            pos = end + 6
            continue
        head = data[start:stream_at]
        length = re.search(rb"/Length (\d+)", head)
        if length is None:
            raise ValueError(f"object {match.group(1)!r}: a stream without a direct /Length")
        body_at = stream_at + len(b"stream")
        body_at += 2 if data[body_at : body_at + 2] == b"\r\n" else 1
        raw = data[body_at : body_at + int(length.group(1))]
        stream = zlib.decompress(raw) if b"/FlateDecode" in head else raw
        objects[int(match.group(1))] = _Object(head, stream)
        pos = data.find(b"endobj", body_at + len(raw)) + 6
    return objects


def _cmap(stream: bytes) -> dict[int, str]:
    """code -> text from a ToUnicode CMap's bfchar and bfrange sections."""
    mapping: dict[int, str] = {}
    for section in re.findall(rb"beginbfrange(.*?)endbfrange", stream, re.S):
        for low, high, first in _HEX_RANGE.findall(section):
            base = int(first, 16)
            for offset, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                mapping[code] = chr(base + offset)
    for section in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
        for code, text in _HEX_PAIR.findall(section):
            mapping[int(code, 16)] = bytes.fromhex(text.decode()).decode("utf-16-be")
    return mapping


def _literal(content: bytes, pos: int) -> tuple[bytes, int]:
    """A `( ... )` string starting at content[pos] == '(': its bytes and the end position."""
    out = bytearray()
    depth, i = 1, pos + 1
    while depth:
        c = content[i : i + 1]
        if c == b"\\":
            nxt = content[i + 1 : i + 2]
            if nxt in _ESCAPES:
                out += _ESCAPES[nxt]
                i += 2
            elif nxt.isdigit():
                digits = re.match(rb"[0-7]{1,3}", content[i + 1 : i + 4])
                assert digits is not None
                out.append(int(digits.group(), 8) & 0xFF)
                i += 1 + len(digits.group())
            elif nxt in b"\r\n":
                i += 2  # a line continuation
            else:
                out += nxt
                i += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if not depth:
                break
        out += c
        i += 1
    return bytes(out), i + 1


def _page_text(content: bytes, fonts: dict[bytes, dict[int, str] | None]) -> list[str]:
    """One string per BT..ET text object that shows text, in drawing order."""
    blocks: list[str] = []
    current: list[str] = []
    operands: list[bytes] = []
    font: dict[int, str] | None = None

    def decode(raw: bytes) -> str:
        if font is None:
            return raw.decode("cp1252", errors="replace")
        codes = (int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2))
        return "".join(font.get(code, "\ufffd") for code in codes)

    pos, size = 0, len(content)
    while pos < size:
        c = content[pos : pos + 1]
        if c.isspace() or c in b"[]":
            pos += 1
        elif c == b"(":
            raw, pos = _literal(content, pos)
            operands.append(raw)
        elif c == b"<" and content[pos : pos + 2] != b"<<":
            end = content.index(b">", pos)
            hex_text = re.sub(rb"\s", b"", content[pos + 1 : end]).decode()
            operands.append(bytes.fromhex(hex_text + "0" * (len(hex_text) % 2)))
            pos = end + 1
        elif c == b"/":
            name = re.match(rb"/[^\s/\[\]()<>]*", content[pos:])
            assert name is not None
            operands.append(name.group())
            pos += len(name.group())
        else:
            word = re.match(rb"[^\s/\[\]()<>]+", content[pos:])
            if word is None:
                pos += 1
                continue
            token = word.group()
            pos += len(token)
            if re.fullmatch(rb"[-+.0-9]+", token):
                continue  # a number operand: positions, sizes, kerning
            if token == b"Tf" and operands:
                font = fonts.get(operands[-1].lstrip(b"/"))
            elif token in (b"Tj", b"TJ", b"'", b'"'):
                strings = [o for o in operands if not o.startswith(b"/")]
                current.append("".join(decode(s) for s in strings))
            elif token == b"ET":
                if current:  # fpdf2 also sets fonts in text objects that show nothing
                    blocks.append("".join(current))
                current = []
            operands = []
    return blocks


def pdf_text(data: bytes) -> str:
    """All the text of the PDF: one line per text object, pages separated by a form feed."""
    if not data.startswith(b"%PDF-"):
        raise ValueError("not a PDF")
    objects = _objects(data)
    to_unicode: dict[int, dict[int, str] | None] = {}
    for number, obj in objects.items():
        if b"/Type /Font" in obj.head and b"/Subtype /CIDFontType2" not in obj.head:
            ref = re.search(rb"/ToUnicode (\d+) 0 R", obj.head)
            stream = objects[int(ref.group(1))].stream if ref else None
            to_unicode[number] = _cmap(stream) if stream is not None else None
    fonts: dict[bytes, dict[int, str] | None] = {}
    for obj in objects.values():
        for section in re.findall(rb"/Font\s*<<(.*?)>>", obj.head, re.S):
            for name, number in _REF.findall(section):
                fonts[name] = to_unicode.get(int(number))
    pages: list[str] = []
    for number in sorted(objects):
        head = objects[number].head
        if not re.search(rb"/Type /Page\b(?!s)", head):
            continue
        contents = re.search(rb"/Contents (\d+) 0 R", head)
        stream = objects[int(contents.group(1))].stream if contents else None
        pages.append("\n".join(_page_text(stream or b"", fonts)))
    return "\f".join(pages)


def pdf_words(data: bytes) -> str:
    """The PDF's text with every run of white space (line and page breaks too) as one space:
    a phrase wrapped over two lines is still found whole."""
    return " ".join(pdf_text(data).split())
