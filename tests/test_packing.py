"""What a bundle keeps deflated in memory (its zip directory, its manifest's lines) is
deflated on a worker thread: the same compressed stream as in line, in order, for
bundles written at once, and in a forked child too."""

from __future__ import annotations

import multiprocessing
import os
import random
import zlib

from strongroom.office.packing import BackgroundDeflate


def _blocks(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    words = [os.urandom(8).hex() for _ in range(50)]
    return [" ".join(rng.choices(words, k=rng.randint(0, 9000))).encode() for _ in range(count)]


def _in_line(blocks: list[bytes]) -> bytes:
    pack = zlib.compressobj(1)
    return b"".join(pack.compress(b) for b in blocks) + pack.flush()


def test_the_stream_is_the_one_deflate_makes_in_line() -> None:
    blocks = _blocks(1, 60)  # more than the blocks allowed to wait
    background = BackgroundDeflate(1)
    for block in blocks:
        background.compress(block)
    packed = b"".join(background.finish())
    assert packed == _in_line(blocks)
    assert zlib.decompress(packed) == b"".join(blocks)


def test_two_bundles_written_at_once_keep_their_own_streams() -> None:
    first, second = _blocks(2, 30), _blocks(3, 30)
    a, b = BackgroundDeflate(1), BackgroundDeflate(1)
    for x, y in zip(first, second, strict=True):
        a.compress(x)
        b.compress(y)
    assert b"".join(a.finish()) == _in_line(first)
    assert b"".join(b.finish()) == _in_line(second)


def _child(blocks: list[bytes]) -> bytes:
    background = BackgroundDeflate(1)
    for block in blocks:
        background.compress(block)
    return b"".join(background.finish())


def test_a_forked_child_deflates_with_its_own_worker() -> None:
    """The parent's worker thread does not exist in a forked child: waiting on it
    would hang the child's export for ever."""
    blocks = _blocks(4, 12)
    assert b"".join(_child(blocks) for _ in range(1)) == _in_line(blocks)  # parent's worker
    with multiprocessing.get_context("fork").Pool(1) as pool:
        result = pool.apply_async(_child, (blocks,))
        assert result.get(timeout=60) == _in_line(blocks)
