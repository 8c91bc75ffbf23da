"""docs/protocol.md as the tests read it: a test quotes the rule it exercises.

`rule(words)` returns the sentence of protocol.md that holds `words` (whitespace
and line breaks normalised), or fails the test: a rule reworded or dropped from
the normative text shows up here, next to the behaviour that implements it.
"""

from __future__ import annotations

import re
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def text() -> str:
    return _flat(PROTOCOL.read_text(encoding="utf-8"))


def rule(words: str) -> str:
    """The sentence of protocol.md containing `words`; AssertionError if there is none."""
    doc = text()
    needle = _flat(words)
    at = doc.find(needle)
    assert at >= 0, f"docs/protocol.md no longer says: {words!r}"
    start = max(doc.rfind(". ", 0, at), doc.rfind("\n", 0, at)) + 1
    end = doc.find(". ", at + len(needle))
    return doc[start : end if end >= 0 else len(doc)].strip()
