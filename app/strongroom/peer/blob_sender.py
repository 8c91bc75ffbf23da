"""A stored blob streamed to a phone as blob_data frames (protocol.md §9), off the loop.

Per ~512 KiB batch, one worker-thread trip reads and decrypts the stored chunks
(the next batch's, while the loop writes this one's) and another frames and seals
the pieces under the outbox's lock (Noise nonces are implicit: what is sealed is
written in that order before anything else is sealed). The loop only writes the
sealed messages. Building each frame with cbor2 and sealing it on the loop, one
loop turn per piece, cost the box about as much CPU as its two ciphers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from strongroom.peer.blob_frames import blob_data_parts
from strongroom.peer.channel import SecureChannel
from strongroom.peer.frames import BLOB_PIECE_BYTES

BATCH_CHUNKS = 8  # stored chunks (64 KiB of plaintext each) per worker-thread trip


class Batch:
    """Decrypted chunks of the blob, in order; `last` when they reach its end."""

    __slots__ = ("chunks", "last")

    def __init__(self, chunks: list[bytes], last: bool) -> None:
        self.chunks = chunks
        self.last = last


def read_batch(chunks: Iterator[bytes]) -> Batch:
    """The next BATCH_CHUNKS chunks (worker thread; BlobError if one fails to authenticate)."""
    batch = list(itertools.islice(chunks, BATCH_CHUNKS))
    # A short batch is the end; a full one may be too: the next read then finds nothing.
    return Batch(batch, len(batch) < BATCH_CHUNKS)


class BlobFrames:
    """Cuts decrypted chunks into blob_data pieces and seals their frames."""

    def __init__(self, request_id: int, offset: int) -> None:
        self._request_id = request_id
        self._sent = offset
        self._pending = bytearray()
        self.done = False

    def seal(self, channel: SecureChannel, batch: Batch) -> list[bytes]:
        """The transport messages of the pieces `batch` completes (worker thread, under
        the outbox lock). The last piece waits for the end of the blob: it carries
        end=True (an empty one when the blob, or what remains of it, is empty)."""
        for chunk in batch.chunks:
            self._pending += chunk
        messages: list[bytes] = []
        taken = 0
        with memoryview(self._pending) as view:
            while len(view) - taken > BLOB_PIECE_BYTES:
                messages += self._seal_piece(channel, view[taken : taken + BLOB_PIECE_BYTES], False)
                taken += BLOB_PIECE_BYTES
            if batch.last:
                messages += self._seal_piece(channel, view[taken:], True)
                taken = len(view)
                self.done = True
        del self._pending[:taken]
        return messages

    def _seal_piece(self, channel: SecureChannel, piece: memoryview, end: bool) -> list[bytes]:
        before, after = blob_data_parts(self._request_id, self._sent, len(piece), end)
        self._sent += len(piece)
        return channel.seal_parts((before, piece, after))
