"""Python's cyclic garbage collector, tuned for a long-running worker.

The worker's heap is mostly acyclic: profiles (dicts, lists, tuples), records and encoded
bytes, freed by reference counting the moment they are replaced. The cyclic collector still
scans every tracked object in each full collection, and with CPython's defaults (a full
collection after every 10 of generation 1) the bench's worker spent 12-15 % of its time there
(docs/performance.md). Tuned: what is alive once the worker is set up (modules, the strategy,
schemas, the codec) is frozen out of collections, the oldest generation is collected a tenth
as often, and the youngest only after 20 000 more tracked objects than it last saw instead of
700. A batch holds the decoded records, events, emits and profile copies of up to 2 000
records at once, ~10 000 objects that reference counting frees when the batch ends; at 700,
each batch paid a dozen young collections to find no garbage (none found in 40 000 events with
the collector off). Tuned, the worker also holds collections off while it polls and processes
a batch (`collections_between_batches`): a collection due meanwhile runs after the batch, when
its records and events are freed, and scans only what outlives it. Cycles are still found and
freed, later.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "FULL_COLLECTION_EVERY",
    "YOUNG_COLLECTION_AFTER",
    "collections_between_batches",
    "tune_collector",
]

# net new tracked objects between young-generation collections (CPython's default: 700)
YOUNG_COLLECTION_AFTER = 20_000
# generation-1 collections between full collections (CPython's default: 10)
FULL_COLLECTION_EVERY = 100

_tuned = False  # tune_collector(True) ran in this process


def tune_collector(enabled: bool) -> int:
    """Freeze what is alive now and collect the youngest and the oldest generation less often
    (if ``enabled``).

    Returns the number of objects frozen (0 if not enabled).
    """
    if not enabled:
        return 0
    gc.collect()
    gc.freeze()
    _first, second, _third = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_AFTER, second, FULL_COLLECTION_EVERY)
    global _tuned  # noqa: PLW0603 - the collector is process-wide state, and so is this
    _tuned = True
    return gc.get_freeze_count()


@contextmanager
def collections_between_batches() -> Iterator[None]:
    """Hold automatic collections off inside the block, if `tune_collector` tuned them.

    One due meanwhile runs at the first allocation after the block, with CPython's own choice
    of generation. Around one batch (its poll included), that is when the batch's records,
    events and outputs are freed, so the collection scans what outlives the batch only, once
    (measured: the collector's time in a bench run roughly halved). A collector turned off
    (``gc.disable``) stays off.
    """
    if not _tuned or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
