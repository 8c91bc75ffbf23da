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
