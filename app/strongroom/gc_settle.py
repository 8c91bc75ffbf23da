"""Keep the objects the box builds at start out of the garbage collector's passes.

The box's long-lived objects (imported modules, the web app and its routes, the
archive, the peer service, caches) are built once at start or unlock and live
until the box stops. CPython's full collection walks every tracked object each
time, so under ingest each full pass walked all of them again: the event loop
paused 53-160 ms at a time (measured with the ingest benchmark). `gc.freeze()`
moves every object alive now to a permanent generation no collection walks.

Objects frozen here are still freed by reference counting when dropped; only a
reference cycle among them would never be collected, which is why `settle` runs
only after the start (and after each unlock), when what exists is meant to stay.

The young generation is collected every YOUNG_OBJECTS net new tracked objects
instead of CPython's 700. Under ingest the objects of the pushes in flight (640
of them: frames, records, callbacks) are young and alive, and almost nothing the
box makes is a reference cycle: at 700, one saturated run of the ingest benchmark
made 535 young and 48 middle collections that found 26 objects to free, ~17 µs
of the event loop's time per record; at 20,000, two collections (~1 µs). Garbage
that is a cycle waits longer for its collection; the rest is freed by reference
counting as before.

That threshold is process-wide: the web UI and the control socket (`strongroom
status` and the other CLI commands that ask the running box) share the process.
Measured per request (the request's own objects, aiohttp's client included), their
pages and answers leave 0-100 cyclic objects, at most ~40 KiB: a few MiB at most
wait for the next collection. fpdf2's documents do not: each PDF leaves ~1,700
objects in cycles (fontTools' font tables point back at their font), ~3.6 MiB.
At 20,000, twenty /report.pdf in a row held 33-36 MiB of them and the process's
RSS grew 42-45 MiB (16-17 MiB at CPython's 700; 4.5-10 MiB with `collect_now`,
which the PDF builders now call as soon as a document's bytes are out).
"""

from __future__ import annotations

import gc

YOUNG_OBJECTS = 20_000


def settle() -> int:
    """Collect what start left behind, freeze the rest, and collect the young
    generation less often (YOUNG_OBJECTS); returns the objects frozen."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS, middle, old)
    return gc.get_freeze_count()


def collect_now() -> int:
    """Free at once the cycles just dropped (a PDF's document: module doc) rather than
    after YOUNG_OBJECTS more objects; returns how many objects were unreachable.

    The young and middle generations only: 1.6-3.1 ms (medians) against 15-40 ms for
    a full pass, and after twenty PDFs a full pass found nothing more. A document part
    of which a middle collection promoted while it was being built waits for a full
    one, as any garbage does."""
    return gc.collect(1)
