"""The zip's listed members, its directory and its end records must be the whole file.

verify-export reads members through the central directory (Python's zipfile), but
a streaming reader (a mail scanner, `bsdtar`, a phone's unzip-as-you-download)
walks the local headers from byte 0. Bytes the directory does not list (bytes
prepended, which zipfile silently skips, or a local entry it never names) are
shown by one and never checked by the other: a forged record could ride in a
bundle that verifies. So the listed entries (local header, data, data descriptor)
must tile the file from 0 to the central directory, with no gap and no overlap.

After the directory the same holds: its entries, then the zip64 end record and
its locator (only those two, 56 and 20 bytes, when the bundle has them), then
the end record, whose comment is exactly the seal and ends the file. zipfile
reads the directory just before the end records whatever their offset field
says, and shifts every member's offset by the difference: an end record naming
another directory (one that `unzip` would read) with the members' offsets moved
to match reads back as a sound zip. A comment longer than the seal hides bytes
between the end record and the seal, which is read from the file's last bytes.
Both are refused, as are bytes between the directory and the end records, and a
comment shorter than the seal (it cannot be one: the seal is the whole comment).

What a member may carry is what we write (`zip_stream.py`): no member comment
and no extra field but zip64 sizes (0x0001), in the directory and in the local
headers. A comment or another extra field is bytes no check reads and some
readers show (`zipinfo`, archive managers): refused, naming the member
(`foreign_fields`).
"""

from __future__ import annotations

import struct
import zipfile
from typing import IO

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
_CENTRAL = struct.Struct("<4s6H3I5HII")  # central directory header, 46 bytes
_END = struct.Struct("<4s4H2IH")  # end of central directory record, 22 bytes
_END64 = struct.Struct("<4sQ2H2I4Q")  # zip64 end record, 56 bytes (no extensible data)
_LOCATOR64 = struct.Struct("<4sIQI")  # zip64 end record locator, 20 bytes
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_END_SIGNATURE = b"PK\x05\x06"
_END64_SIGNATURE = b"PK\x06\x06"
_LOCATOR64_SIGNATURE = b"PK\x06\x07"
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF
_MAX_COMMENT = 0xFFFF
_LOCAL_SIGNATURE = b"PK\x03\x04"
_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_HAS_DESCRIPTOR = 0x08  # general purpose flag bit 3: sizes follow the data
_ZIP64_EXTRA = 0x0001

# Its msgid is in the web catalogues (verify-export prints it in French and English).
UNLISTED_BYTES = (
    "bytes %(start)s to %(end)s of the file are not exactly the members the zip lists"
    " (hidden or overlapping data): a streaming reader could show content that"
    " verify-export never checked"
)

SHORT_COMMENT = (
    "bytes %(start)s to %(end)s of the file, the zip comment, are shorter than the"
    " container seal: a sealed bundle's comment is exactly its seal"
)

MEMBER_COMMENT = (
    "carries a zip comment of %(size)s bytes: the members of a sealed bundle carry none"
    " (bytes that verify-export never checked, shown by some zip readers)"
)

MEMBER_EXTRA = (
    "carries a zip extra field of type %(kind)s: the members of a sealed bundle carry only"
    " zip64 sizes (bytes that verify-export never checked, shown by some zip readers)"
)

UNLISTED_TAIL = (
    "bytes %(start)s to %(end)s of the file, after the zip's central directory, are"
    " not exactly its end records (hidden data, or an end record naming another"
    " directory): verify-export never checked them"
)


def _extra_kinds(extra: bytes) -> list[int]:
    """The type of each field of an extra block (a truncated field counts as 0xFFFF)."""
    kinds, at = [], 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        kinds.append(kind if at + 4 + size <= len(extra) else 0xFFFF)
        at += 4 + size
    if at != len(extra):
        kinds.append(0xFFFF)
    return kinds


def _has_zip64(extra: bytes) -> bool:
    return _ZIP64_EXTRA in _extra_kinds(extra)


def _local_extra(fp: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    fp.seek(info.header_offset)
    fields = _LOCAL.unpack(fp.read(_LOCAL.size))
    fp.seek(info.header_offset + _LOCAL.size + int(fields[9]))
    return fp.read(int(fields[10]))


def foreign_fields(zf: zipfile.ZipFile) -> list[tuple[str, str, dict[str, object]]]:
    """(member, msgid, values) for each member comment or extra field a sealed bundle
    does not carry; run after `unlisted_span` (every local header is where it says)."""
    fp = zf.fp
    if fp is None:
        raise ValueError("the zip file is closed")
    found: list[tuple[str, str, dict[str, object]]] = []
    for info in zf.infolist():
        if info.comment:
            found.append((info.filename, MEMBER_COMMENT, {"size": len(info.comment)}))
        for extra in (info.extra, _local_extra(fp, info)):
            for kind in _extra_kinds(extra):
                if kind != _ZIP64_EXTRA:
                    found.append((info.filename, MEMBER_EXTRA, {"kind": f"0x{kind:04x}"}))
    return found


def _entry_end(fp: IO[bytes], info: zipfile.ZipInfo) -> int | None:
    """Where the entry starting at info.header_offset ends, or None if no entry is there."""
    fp.seek(info.header_offset)
    header = fp.read(_LOCAL.size)
    if len(header) != _LOCAL.size or header[:4] != _LOCAL_SIGNATURE:
        return None
    fields = _LOCAL.unpack(header)
    name_len, extra_len = int(fields[9]), int(fields[10])
    fp.seek(info.header_offset + _LOCAL.size + name_len)
    extra = fp.read(extra_len)
    end = info.header_offset + _LOCAL.size + name_len + extra_len + info.compress_size
    if info.flag_bits & _HAS_DESCRIPTOR:
        fp.seek(end)
        signed = fp.read(4) == _DESCRIPTOR_SIGNATURE
        # crc-32, then compressed and uncompressed sizes: 8 bytes each under zip64.
        end += (4 if signed else 0) + 4 + (16 if _has_zip64(extra) else 8)
    return end


def unlisted_span(zf: zipfile.ZipFile) -> tuple[int, int] | None:
    """The first span before the central directory that the listed entries do not
    cover exactly once, or None when they tile it."""
    fp = zf.fp
    if fp is None:
        raise ValueError("the zip file is closed")
    start_dir = int(zf.start_dir)  # set by ZipFile when it reads the directory
    covered = 0
    for info in sorted(zf.infolist(), key=lambda i: i.header_offset):
        if info.header_offset != covered:  # a gap before it, or an overlap with the last
            return min(covered, info.header_offset), max(covered, info.header_offset)
        end = _entry_end(fp, info)
        if end is None or end > start_dir:
            return info.header_offset, start_dir
        covered = end
    if covered != start_dir:
        return covered, start_dir
    return None


def _directory_end(fp: IO[bytes], start_dir: int, count: int) -> int | None:
    """Where the `count` central directory entries starting at `start_dir` end."""
    at = start_dir
    for _ in range(count):
        fp.seek(at)
        head = fp.read(_CENTRAL.size)
        if len(head) != _CENTRAL.size or head[:4] != _CENTRAL_SIGNATURE:
            return None
        fields = _CENTRAL.unpack(head)
        at += _CENTRAL.size + int(fields[10]) + int(fields[11]) + int(fields[12])
    return at


def _fits(value: int, actual: int, limit: int, zip64: bool) -> bool:
    """An end record field: the actual value, or its "see zip64" sentinel when there is one."""
    return value == min(actual, limit) or (zip64 and value == limit)


def _comment_at(tail: bytes, start_dir: int, dir_end: int, count: int) -> int | None:
    """Where the end record's comment starts in `tail` (the file from `dir_end`) when
    `tail` is exactly [zip64 end record, locator,] end record and comment, all naming
    the directory that was read; None otherwise."""
    size = dir_end - start_dir
    at = 0
    zip64 = tail.startswith(_END64_SIGNATURE)
    if zip64:
        if len(tail) < _END64.size + _LOCATOR64.size:
            return None
        _, length, _, _, disk, dir_disk, here, total, size64, start64 = _END64.unpack_from(tail)
        locator = _LOCATOR64.unpack_from(tail, _END64.size)
        if (
            length != _END64.size - 12  # no extensible data sector: nothing hidden there
            or (disk, dir_disk, here, total, size64, start64)
            != (0, 0, count, count, size, start_dir)
            or locator != (_LOCATOR64_SIGNATURE, 0, dir_end, 1)
        ):
            return None
        at = _END64.size + _LOCATOR64.size
    if len(tail) < at + _END.size:
        return None
    sig, disk, dir_disk, here, total, size32, start32, comment = _END.unpack_from(tail, at)
    holds = (
        sig == _END_SIGNATURE
        and (disk, dir_disk) == (0, 0)
        and _fits(here, count, _MAX16, zip64)
        and _fits(total, count, _MAX16, zip64)
        and _fits(size32, size, _MAX32, zip64)
        and _fits(start32, start_dir, _MAX32, zip64)
        and at + _END.size + comment == len(tail)
    )
    return at + _END.size if holds else None


def unlisted_tail(zf: zipfile.ZipFile, comment_size: int) -> tuple[int, int, str] | None:
    """The first span after the central directory that is not exactly its end records
    and a comment of exactly `comment_size` bytes (the seal), with the msgid saying
    why (`unlisted_message`), or None."""
    fp = zf.fp
    if fp is None:
        raise ValueError("the zip file is closed")
    start_dir = int(zf.start_dir)
    fp.seek(0, 2)
    file_size = fp.tell()
    count = len(zf.infolist())
    dir_end = _directory_end(fp, start_dir, count)
    if dir_end is None:
        return start_dir, file_size, UNLISTED_TAIL
    longest = _END64.size + _LOCATOR64.size + _END.size + _MAX_COMMENT
    if file_size - dir_end > longest:
        return dir_end, file_size, UNLISTED_TAIL
    fp.seek(dir_end)
    tail = fp.read()
    comment_at = _comment_at(tail, start_dir, dir_end, count)
    if comment_at is not None:
        if len(tail) - comment_at == comment_size:
            return None
        if len(tail) - comment_at < comment_size:  # no seal: it is the whole comment
            return dir_end + comment_at, file_size, SHORT_COMMENT
        # zipfile gives the whole comment back, and the seal is read from the file's
        # last bytes: anything before the seal in a longer comment is unchecked.
        start = dir_end + comment_at
        return start, max(start, file_size - comment_size), UNLISTED_TAIL
    # Name the bytes before the end record that zipfile found (the last signature in
    # the tail) when there are any: that is where something was hidden.
    found = tail.rfind(_END_SIGNATURE)
    expected = _END64.size + _LOCATOR64.size if tail.startswith(_END64_SIGNATURE) else 0
    if found > expected:
        return dir_end, dir_end + found, UNLISTED_TAIL
    return dir_end, file_size, UNLISTED_TAIL


def unlisted_message(start: int, end: int, msgid: str = UNLISTED_BYTES) -> str:
    """The problem in French then English, from the web catalogues."""
    return layout_message(msgid, start=start, end=end)


def layout_message(msgid: str, **values: object) -> str:
    """A layout problem in French then English, from the web catalogues."""
    from strongroom.web.i18n import translator

    return " / ".join(translator(language)(msgid, **values) for language in ("fr", "en"))
