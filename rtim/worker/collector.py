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
the collector off). Cycles are still found and freed, later.
"""

from __future__ import annotations

import gc

__all__ = ["FULL_COLLECTION_EVERY", "YOUNG_COLLECTION_AFTER", "tune_collector"]

# net new tracked objects between young-generation collections (CPython's default: 700)
YOUNG_COLLECTION_AFTER = 20_000
# generation-1 collections between full collections (CPython's default: 10)
FULL_COLLECTION_EVERY = 100


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
    return gc.get_freeze_count()
