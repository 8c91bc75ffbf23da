"""Fixtures that build real parts: archives on disk, keys, whole boxes."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from archive_helpers import committing, open_with_keys
from strongroom.archive.committer import GroupCommitter
from strongroom.archive.store import Archive

REPO_ROOT = Path(__file__).resolve().parents[1]

# `make test` runs pytest on two pytest-xdist workers (`-n 2 --dist loadscope`): each module
# is one unit of work, so its module-scoped fixtures (a Chromium, the booted containers, a
# private Tor network) are built once, on one worker. Units start longest first (a serial
# run's wall times, rounded), so the last one to finish is short; the rest keep
# collection order. (Not loadgroup: pytest-xdist 3.8's groups do nothing under pytest 9.2,
# whose node ids it can no longer rename.)
LONGEST_FIRST = (
    "tests/test_appliance_boot.py",  # ~540 s: two containers, debootstrap the first time
    "tests/test_bench_smoke.py",  # ~140 s
    "tests/test_reach_tor.py",  # ~90 s
    "tests/test_archive_scrub.py",  # the rest under 50 s
    "tests/browser/test_records_office_browser.py",
    "tests/test_e2e_records_office_cli.py",
)


@pytest.fixture
def archive_keys() -> dict[str, bytes]:
    return {"archive": os.urandom(32), "blob": os.urandom(32), "sign_seed": os.urandom(32)}


@pytest.fixture
def archive(tmp_path: Path, archive_keys: dict[str, bytes]) -> Iterator[Archive]:
    box = open_with_keys(tmp_path / "data", archive_keys)
    yield box
    box.close()


@pytest.fixture
async def committer(archive: Archive) -> AsyncIterator[GroupCommitter]:
    """The box's group committer (and its checkpointer) running on `archive`."""
    async with committing(archive) as running:
        yield running


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return  # one process: collection order
    rank = {module: position for position, module in enumerate(LONGEST_FIRST)}
    # Stable: each module's tests stay together and in their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
