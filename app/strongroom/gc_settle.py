"""Keep the objects the box builds at start out of the garbage collector's full passes.

The box's long-lived objects (imported modules, the web app and its routes, the
archive, the peer service, caches) are built once at start or unlock and live
until the box stops. CPython's full collection walks every tracked object each
time, so under ingest each full pass walked all of them again: the event loop
paused 53-160 ms at a time (measured with the ingest benchmark). `gc.freeze()`
moves every object alive now to a permanent generation no collection walks.

Objects frozen here are still freed by reference counting when dropped; only a
reference cycle among them would never be collected, which is why `settle` runs
only after the start (and after each unlock), when what exists is meant to stay.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what start left behind, then freeze the rest; returns objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
