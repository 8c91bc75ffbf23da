"""Which indexed words start with a typed prefix, read from the FTS5 segment pages.

Why: FTS5 answers a prefix term ("dossier"*) by merging the whole doclist of
every word with that prefix before ORDER BY rowid DESC LIMIT can stop, so a
search for a common word cost O(matches) (over a second at 5M messages). An
exact term walks its doclist lazily from the newest end. So search expands each
typed prefix into the words the index really holds and asks for
("dossier" OR "dossiers") instead: the same matches, at a cost bounded by the
page size and LIMIT. fts5vocab would list the words too, but it counts each
word's documents by reading its whole doclist: as slow as the prefix query.

Layout read here (SQLite's fts5_index.c, stable on-disk format): `<table>_idx`
holds (segid, first term of a leaf page, pgno << 1 | flag) for every leaf page
on which a term starts; leaf page `pgno` of segment `segid` is the row
(segid << 37) + pgno of `<table>_data` (rows of trimmed pages are deleted, their
_idx rows are not: see completions). A leaf page is a 4-byte header
(u16 first-rowid offset, u16 footer offset), terms and doclists, then a footer
of varints: delta-coded offsets of each term on the page. The first term on a
page is stored whole (varint length, bytes), later ones prefix-compressed
(varint shared bytes, varint new bytes, bytes). Main-index keys start with "0".

Anything unexpected (a page that is not there, a malformed varint, too many
pages or words) returns None and the caller keeps the plain prefix query, which
is always right, only slower.
"""

from __future__ import annotations

from strongroom.archive.db import Connection

# A prefix spanning more leaf pages than this, beyond the one page it starts on in
# each segment, is too common to expand cheaply. Every segment costs that one page
# whatever the prefix, so the budget grows with their number (FTS5 keeps up to 7
# segments per merge level since schema 8).
MAX_PAGES = 48
MAX_COMPLETIONS = 32  # beyond this an OR of exact terms stops paying off
_SEGMENT_SHIFT = 37  # FTS5_DATA_PAGE_B + FTS5_DATA_HEIGHT_B + FTS5_DATA_DLI_B
_PAGE_BITS = 31  # FTS5_DATA_PAGE_B: leaf ids of a segment span (segid << 37) + [0, 2**31)
_MAIN = b"0"  # FTS5_MAIN_PREFIX: key byte of the main (non-prefix) index


class _Malformed(Exception):
    pass


def _varint(buf: bytes, at: int) -> tuple[int, int]:
    """SQLite's 1-9 byte big-endian varint (sqlite3Fts5GetVarint)."""
    value = 0
    for i in range(9):
        if at + i >= len(buf):
            raise _Malformed("varint runs off the page")
        byte = buf[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + i + 1
    raise _Malformed("unreachable")


def _page_terms(page: bytes) -> list[bytes]:
    """Every term that starts on one leaf page, in order, with its index byte."""
    if len(page) < 4:
        raise _Malformed("short leaf page")
    footer = int.from_bytes(page[2:4], "big")
    if footer > len(page):
        raise _Malformed("footer offset past the page")
    terms: list[bytes] = []
    offset = 0
    at = footer
    previous = b""
    while at < len(page):
        delta, at = _varint(page, at)
        offset += delta
        if not terms:
            size, pos = _varint(page, offset)
            term = page[pos : pos + size]
        else:
            shared, pos = _varint(page, offset)
            size, pos = _varint(page, pos)
            term = previous[:shared] + page[pos : pos + size]
        terms.append(term)
        previous = term
    return terms


def _segments(conn: Connection, table: str) -> list[int]:
    """The segment ids, one index seek each (DISTINCT would scan every row)."""
    found: list[int] = []
    while True:
        row = conn.execute(
            f"SELECT segid FROM {table}_idx WHERE segid > ? ORDER BY segid LIMIT 1",  # noqa: S608
            (found[-1] if found else -1,),
        ).fetchone()
        if row is None:
            return found
        found.append(int(row[0]))


def completions(conn: Connection, table: str, word: str) -> list[str] | None:
    """Indexed words starting with `word` (already folded as the tokenizer folds),
    or None when they cannot be listed cheaply and surely."""
    low = _MAIN + word.encode()
    high = low + b"\xff"  # UTF-8 never holds 0xff: every key with the prefix sorts below
    pages: set[tuple[int, int]] = set()
    segments = _segments(conn, table)
    for segid in segments:
        # The last page starting at or before the prefix may hold its first words;
        # every page whose first word falls in the range holds more of them.
        first = conn.execute(
            f"SELECT pgno FROM {table}_idx WHERE segid = ? AND term <= ?"  # noqa: S608
            " ORDER BY term DESC LIMIT 1",
            (segid, low),
        ).fetchone()
        if first is None:
            return None  # every segment has a row for its page 1 (empty term)
        # An incremental merge trims the head of its input segments: their pages
        # before the first one still stored moved into the merge's output segment
        # (read too), and the first stored page was rewritten to open with a whole
        # term, which the _idx rows of the deleted pages no longer point to.
        base = segid << _SEGMENT_SHIFT
        stored = conn.execute(
            f"SELECT min(id) FROM {table}_data WHERE id >= ? AND id < ?",  # noqa: S608
            (base, base + (1 << _PAGE_BITS)),
        ).fetchone()
        if stored is None or stored[0] is None:
            return None
        first_page = int(stored[0]) - base
        pages.add((segid, max(int(first[0]) >> 1, first_page)))
        for (pgno,) in conn.execute(
            f"SELECT pgno FROM {table}_idx WHERE segid = ? AND term > ? AND term < ?"  # noqa: S608
            " LIMIT ?",
            (segid, low, high, MAX_PAGES + 1),
        ):
            if int(pgno) >> 1 >= first_page:
                pages.add((segid, int(pgno) >> 1))
        if len(pages) > MAX_PAGES + len(segments):
            return None
    found: set[bytes] = set()
    try:
        for segid, pgno in pages:
            row = conn.execute(
                f"SELECT block FROM {table}_data WHERE id = ?",  # noqa: S608
                ((segid << _SEGMENT_SHIFT) + pgno,),
            ).fetchone()
            if row is None:
                return None
            found.update(t for t in _page_terms(bytes(row[0])) if low <= t < high)
    except _Malformed:
        return None
    if len(found) > MAX_COMPLETIONS:
        return None
    try:
        return sorted(t[1:].decode() for t in found)
    except UnicodeDecodeError:
        return None
