"""Objects the box builds at start leave the garbage collector's full passes (gc_settle.py).

Under ingest each full collection used to walk every object the box holds for its
whole life (modules, the web app, the archive, the peer service), pausing the event
loop 53-160 ms. Here a started box, once unlocked, has frozen what it built, and a
full collection no longer walks a large frozen heap.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from e2e_helpers import WebAdmin, prepare_data_dir
from strongroom.gc_settle import YOUNG_OBJECTS, settle
from strongroom.office.bundle_pdf import DEJAVU_DIR, PdfRenderer
from strongroom.runtime import BoxRuntime
from strongroom.unlock import BoxPhase
from strongroom.web.i18n import translator
from strongroom.web.recovery_kit import KitSheet, kit_pdf
from web_helpers import ADMIN_PASSWORD, phase_of


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()  # what other tests in this process left frozen is not ours
    thresholds = gc.get_threshold()
    gc.set_threshold(700, *thresholds[1:])  # CPython's default, whatever ran before
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _full_pass_ms() -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def test_a_full_collection_no_longer_walks_what_was_settled() -> None:
    long_lived = [{"n": n, "refs": [n]} for n in range(300_000)]  # ~600k tracked objects
    before = _full_pass_ms()
    frozen = settle()
    after = _full_pass_ms()
    assert frozen >= 600_000
    # A ratio in the same run, not a time: the pass walked the heap, now it does not.
    assert after * 4 < before, (before, after)
    assert len(long_lived) == 300_000  # kept alive until measured


def _young_collections(make: int) -> int:
    """How many young-generation collections `make` new live dicts set off."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 0:
            seen.append(1)

    gc.callbacks.append(count)
    try:
        alive = [{"n": n} for n in range(make)]  # what pushes in flight hold: alive
    finally:
        gc.callbacks.remove(count)
    assert len(alive) == make
    return len(seen)


def test_the_young_generation_is_collected_less_often_once_settled() -> None:
    gc.collect()
    before = _young_collections(10_000)
    settle()
    after = _young_collections(10_000)
    assert before >= 10  # one per ~700 new objects
    assert after == 0
    assert gc.get_threshold()[0] == YOUNG_OBJECTS


async def test_a_started_and_unlocked_box_has_frozen_what_it_built(tmp_path: Path) -> None:
    """Unlocked by hand after the start (not unattended, which runs inside start()
    before its own settle): only the settle that follows an unlock can freeze the
    archive and what unlocking built."""
    config = await prepare_data_dir(tmp_path / "box")
    runtime = BoxRuntime(config, pin_factory=MockFactory(pin_class=MockPWMPin))
    await runtime.start()
    admin = WebAdmin(runtime.url)
    try:
        assert runtime.box.phase is BoxPhase.LOCKED
        frozen_at_start = gc.get_freeze_count()
        assert frozen_at_start > 10_000
        status, _, _ = await admin.post_form("/unlock", {"passphrase": ADMIN_PASSWORD})
        assert status == 303 and phase_of(runtime.box) is BoxPhase.READY
        archive = runtime.box.archive
        assert archive is not None
        # The settle is scheduled on the loop by the unlock: it has run by the time the
        # loop answers another request.
        status, _ = await admin.get("/login")
        assert status == 200
        assert gc.get_freeze_count() > frozen_at_start
        # gc.get_objects() lists what full passes walk; frozen objects are not in it.
        assert not any(o is archive for o in gc.get_objects())
    finally:
        await admin.close()
        await runtime.stop()


def _report_pdf() -> bytes:
    renderer = PdfRenderer("Registre", [("Généré le", "2026-12-06")])
    assert renderer.unicode, "DejaVu is not installed: no font tables, nothing to check"
    renderer.add_paragraph("Responsable du traitement : Cabinet Durand")
    return renderer.output()


def _kit_pdf() -> bytes:
    assert (DEJAVU_DIR / "DejaVuSans.ttf").is_file()
    sheet = KitSheet(["abandon"] * 24, "Cabinet", dt.date(2026, 12, 6), "ab" * 32)
    return kit_pdf(sheet, translator("fr"))


@pytest.mark.parametrize("build", [_report_pdf, _kit_pdf], ids=["report", "recovery kit"])
def test_a_pdf_leaves_no_document_for_the_collector(build: Callable[[], bytes]) -> None:
    """fpdf2's documents are reference cycles (~3.6 MiB each, its fonts' tables): at
    YOUNG_OBJECTS they waited for 20,000 more objects, and twenty PDFs grew the box's
    RSS by 42-45 MiB. Each is freed as its bytes are handed out."""
    build()  # fpdf2 imported, fonts' caches warm
    settle()
    gc.disable()  # no collection but the builder's own
    try:
        assert build().startswith(b"%PDF")
        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept, to be named
        gc.collect()
        left = {type(o).__module__.split(".")[0] for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left & {"fpdf", "fontTools"}, left
