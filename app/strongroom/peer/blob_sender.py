"""A stored blob streamed to a phone as blob_data frames (protocol.md §9).

A worker thread reads and decrypts the next ~1 MiB of stored chunks while the
loop seals and writes the pieces of the batch before it. Each piece's frame is its
exact canonical bytes written around the piece (peer/blob_frames.py), sealed under
the outbox's lock (Noise nonces are implicit: a batch is written in the order it
was sealed, before anything else is sealed), one piece at a time, in place in the
buffer of its WebSocket frame, which leaves in one write (SecureChannel.seal_parts_into,
peer/ws_send.py). Each is written as soon as it is sealed, so the phone starts on a
batch before the box has sealed all of it (docs/benchmarks.md, "the box's send
path"). Before, each piece was a Frame
encoded by cbor2 and sent through the outbox on its own loop turn. Sealing stays
on the loop: done on another worker thread it cost the box more CPU here (bytes
allocated in one thread's malloc arena and freed in another's), not less.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from strongroom import malloc_tuning
from strongroom.peer.blob_frames import blob_data_parts
from strongroom.peer.channel import SecureChannel
from strongroom.peer.frames import BLOB_PIECE_BYTES

# Stored chunks (64 KiB of plaintext each) per worker-thread trip: 1 MiB. Each trip
# costs the box thread wake-ups and GIL hand-offs; 16 rather than 8 gave the pinned
# restore ~9 % more MiB/s and ~6 % less box CPU per MiB (3 rounds each, load ~1.5);
# 32 gained nothing more. A stream holds at most two batches (one read ahead).
BATCH_CHUNKS = 16


class Batch:
    """Decrypted chunks of the blob, in order; `last` when they reach its end."""

    __slots__ = ("chunks", "last")

    def __init__(self, chunks: list[bytes], last: bool) -> None:
        self.chunks = chunks
        self.last = last


def read_batch(chunks: Iterator[bytes]) -> Batch:
    """The next BATCH_CHUNKS chunks (worker thread; BlobError if one fails to authenticate)."""
    batch = list(itertools.islice(chunks, BATCH_CHUNKS))
    if batch:
        # A block of this thread's malloc arena whose free, after the streams, trims
        # it (malloc_tuning): a blank one, not the plaintext, which is not kept longer
        # than its send (review L8).
        malloc_tuning.allocated_here(bytearray(malloc_tuning.ARENA_HANDLE_BYTES))
    # A short batch is the end; a full one may be too: the next read then finds nothing.
    return Batch(batch, len(batch) < BATCH_CHUNKS)


class BlobFrames:
    """Cuts decrypted chunks into blob_data pieces and seals their frames.

    A piece is sealed straight from slices of the decrypted chunks (one join with
    its flag byte and CBOR around it, then the encryption): stored chunks are 64 KiB
    and pieces 65,280 bytes, so most pieces span two chunks. Gathering the chunks
    in a bytearray first cost the box a second copy of every byte."""

    def __init__(self, request_id: int, offset: int, room: int = 0) -> None:
        self._request_id = request_id
        self._room = room  # free bytes before each message (the outbox's frame header)
        self._sent = offset
        self._parts: list[memoryview] = []  # the next piece's bytes, not sealed yet
        self._size = 0
        self.done = False

    def seal(self, channel: SecureChannel, batch: Batch) -> Iterator[bytes | bytearray]:
        """The transport messages of the pieces `batch` completes, each sealed when the
        outbox asks for it (under its lock): the first piece of a batch is on the wire
        while the next is sealed, so the phone does not wait for a whole batch. The
        last piece waits for the end of the blob: it carries end=True (an empty one
        when the blob, or what remains of it, is empty)."""
        for chunk in batch.chunks:
            view = memoryview(chunk)
            pos, size = 0, len(view)
            while pos < size:
                room = BLOB_PIECE_BYTES - self._size
                if room == 0:  # a whole piece, and more bytes follow it: not the end
                    yield from self._seal_piece(channel, False)
                    room = BLOB_PIECE_BYTES
                take = min(room, size - pos)
                self._parts.append(view[pos : pos + take])
                self._size += take
                pos += take
        if batch.last:
            self.done = True
            yield from self._seal_piece(channel, True)

    def _seal_piece(self, channel: SecureChannel, end: bool) -> list[bytes] | list[bytearray]:
        before, after = blob_data_parts(self._request_id, self._sent, self._size, end)
        parts: list[bytes | memoryview] = [before, *self._parts, after]
        if self._room:
            sealed: list[bytes] | list[bytearray] = channel.seal_parts_into(parts, self._room)
        else:
            sealed = channel.seal_parts(parts)
        self._sent += self._size
        self._parts, self._size = [], 0
        return sealed
