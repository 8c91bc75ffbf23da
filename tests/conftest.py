"""Fixtures that build real parts: archives on disk, keys, whole boxes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from strongroom.archive.store import Archive

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def archive_keys() -> dict[str, bytes]:
    return {"archive": os.urandom(32), "blob": os.urandom(32), "sign_seed": os.urandom(32)}


@pytest.fixture
def archive(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Archive]:
    box = Archive.open(
        tmp_path / "data",
        archive_keys["archive"],
        archive_keys["blob"],
        SigningKey(archive_keys["sign_seed"]),
    )
    yield box
    box.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, launched once per browser-test module."""
    # Imported here: only tests/browser/ modules ask for it, and their directory is then
    # on sys.path (tests/ is not a package, so a tests/browser/conftest.py would clash).
    from browser_support import launched_chromium

    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def box_clock_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Sets the zone this process (the box) and the CLI it starts keep their clocks in;
    the test's own zone comes back afterwards."""

    def set_zone(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    yield set_zone
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def box_in_utc(box_clock_zone: Callable[[str], None]) -> None:
    """The box keeps its clock in UTC, as an appliance does."""
    box_clock_zone("UTC")
