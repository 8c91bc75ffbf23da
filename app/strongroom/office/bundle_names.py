"""File names inside a sealed bundle: safe for sha256sum lines, unzip and every OS."""

from __future__ import annotations

import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, limit: int = 80) -> str:
    """A name sha256sum prints without escaping and every OS accepts."""
    cleaned = _SAFE.sub("_", name).strip("._") or "file"
    return cleaned[:limit]


# What no file name in a bundle may hold: path separators, characters Windows
# refuses, and backslash/control characters (sha256sum would escape the line).
_UNSAFE_UNICODE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f-\x9f]+')


def unicode_file_name(name: str, limit_bytes: int = 180) -> str:
    """The sender's own file name (accents, spaces, any script), made safe to unzip."""
    import unicodedata

    cleaned = _UNSAFE_UNICODE.sub("_", unicodedata.normalize("NFC", name)).strip(" .") or "file"
    while len(cleaned.encode("utf-8")) > limit_bytes:
        stem, dot, ext = cleaned.rpartition(".")
        cleaned = f"{stem[:-1]}.{ext}" if dot and stem and len(ext) < 10 else cleaned[:-1]
    return cleaned
