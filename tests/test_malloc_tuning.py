"""malloc_tuning: while a blob stream runs, its batches reuse freed memory instead of
fresh pages; once it ends, what the main arena kept goes back."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A box's blob stream in miniature: batches of 16 x 64 KiB allocated, then freed
# together; the page faults of 50 batches, and the RSS the stream's end gave back.
_BATCHES = """
import resource, sys
from strongroom import malloc_tuning
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096
assert malloc_tuning.keep_freed_memory()  # as the box at start
stream = malloc_tuning.streaming() if sys.argv[1] == "streaming" else None
if stream is not None:
    stream.__enter__()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    batch = [bytes(65536) + b"x" for _ in range(16)]
    del batch
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
kept = rss()
if stream is not None:
    stream.__exit__(None, None, None)
print(faults, kept - rss())
"""


def _run(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", _BATCHES, mode], capture_output=True, text=True, check=True
    ).stdout
    faults, returned = out.split()
    return int(faults), int(returned)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_stream_reuses_freed_batches_and_gives_them_back_when_it_ends() -> None:
    idle_faults, _ = _run("idle")
    stream_faults, returned = _run("streaming")
    # Outside a stream every freed 1 MiB batch is trimmed and faulted in again (~210
    # of its 256 pages here: 10,464 faults for the 50; in a stream 259).
    assert idle_faults > 50 * 100
    assert stream_faults < idle_faults / 10
    # What the stream kept (at least the last batch) goes back to the kernel at its end.
    assert returned >= 1024 * 1024
