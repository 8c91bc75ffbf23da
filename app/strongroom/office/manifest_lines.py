"""The manifest's `sha256sum` lines, kept compressed while a bundle is written.

Six files per exported record: the manifest of a 100,000-message export is
55 MB as text; compressed in 64 KiB blocks it is a few MB, and no object is
kept per line.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from strongroom.office.packing import BackgroundDeflate


class CompressedLines:
    """`sha256sum` lines appended one by one, read back (as often as needed) in order."""

    def __init__(self) -> None:
        self._pack = BackgroundDeflate(1)  # on a worker thread (packing.py says why)
        self._packed: list[bytes] = []
        self._pending = bytearray()
        self._done = False

    def add(self, digest_hex: str, name: str) -> None:
        if self._done:
            raise ValueError("the manifest is already sealed")
        self._pending += f"{digest_hex}  {name}\n".encode()
        if len(self._pending) >= 1 << 16:  # compressed in blocks, not line by line
            self._pack_pending()

    def add_lines(self, text: str) -> None:
        """Several whole lines at once ("<hex>  <name>\\n" each)."""
        if self._done:
            raise ValueError("the manifest is already sealed")
        self._pending += text.encode()
        if len(self._pending) >= 1 << 16:
            self._pack_pending()

    def _pack_pending(self) -> None:
        self._pack.compress(bytes(self._pending))
        self._pending.clear()

    def chunks(self) -> Iterator[bytes]:
        if not self._done:
            self._pack_pending()
            self._packed = self._pack.finish()
            self._done = True
        unpack = zlib.decompressobj()
        for packed in self._packed:
            data = unpack.decompress(packed)
            if data:
                yield data
        rest = unpack.flush()
        if rest:
            yield rest
