"""The zip's listed members must be the whole file up to its central directory.

verify-export reads members through the central directory (Python's zipfile), but
a streaming reader (a mail scanner, `bsdtar`, a phone's unzip-as-you-download)
walks the local headers from byte 0. Bytes the directory does not list (bytes
prepended, which zipfile silently skips, or a local entry it never names) are
shown by one and never checked by the other: a forged record could ride in a
bundle that verifies. So the listed entries (local header, data, data descriptor)
must tile the file from 0 to the central directory, with no gap and no overlap.
"""

from __future__ import annotations

import struct
import zipfile
from typing import IO

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
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


def _has_zip64(extra: bytes) -> bool:
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        if kind == _ZIP64_EXTRA:
            return True
        at += 4 + size
    return False


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


def unlisted_message(start: int, end: int) -> str:
    """The problem in French then English, from the web catalogues."""
    from strongroom.web.i18n import translator

    return " / ".join(
        translator(language)(UNLISTED_BYTES, start=start, end=end) for language in ("fr", "en")
    )
