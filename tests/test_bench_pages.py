"""scripts/bench_pages.py: the decomposition of a group commit's writes (issue #20 item 1).

Its checkpoint figures are simulated from one WAL written with checkpoints off, so
they must count what SQLite's automatic checkpoint copies: after the commit that
takes the WAL to the interval, each distinct page of the window once, and again
at the end (the growth row's last checkpoint).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# The scripts are not a package (nor on mypy's path): imported by name at run time.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
bench_pages = importlib.import_module("bench_pages")


def test_a_checkpoint_copies_each_page_of_its_window_once() -> None:
    commits = [[1, 2], [2, 3], [3], [3, 4, 4]]
    # 4 frames after the second commit reach the interval: {1, 2, 3} copied;
    # then [3] and [3, 4, 4] (4 frames again): {3, 4}.
    assert bench_pages.checkpoint_writes(commits, 4)[:2] == (2, 5)
    # One window (the growth row's final checkpoint): every distinct page once.
    assert bench_pages.checkpoint_writes(commits, 1_000)[:2] == (1, 4)
    # SQLite's default-like interval of one commit: each commit's pages.
    assert bench_pages.checkpoint_writes(commits, 1)[:2] == (4, 7)


def test_pages_are_counted_per_b_tree() -> None:
    names = {1: "records", 2: "records", 3: "records_conversation"}
    _, _, by_tree = bench_pages.checkpoint_writes([[1, 3], [2, 3], [3, 9]], 100, names)
    assert by_tree == {"records": 2, "records_conversation": 1, "?new/free": 1}
