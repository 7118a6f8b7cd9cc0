"""Python's cyclic garbage collector, tuned for a long-running worker.

The worker's heap is mostly acyclic: profiles (dicts, lists, tuples), records and encoded
bytes, freed by reference counting the moment they are replaced. The cyclic collector still
scans every tracked object in each full collection, and with CPython's defaults (a full
collection after every 10 of generation 1) the bench's worker spent 12-15 % of its time there
(docs/performance.md). Tuned: what is alive once the worker is set up (modules, the strategy,
schemas, the codec) is frozen out of collections, and the oldest generation is collected a
tenth as often. Cycles are still found and freed, later.
"""

from __future__ import annotations

import gc

__all__ = ["FULL_COLLECTION_EVERY", "tune_collector"]

# generation-1 collections between full collections (CPython's default: 10)
FULL_COLLECTION_EVERY = 100


def tune_collector(enabled: bool) -> int:
    """Freeze what is alive now and collect the oldest generation less often (if ``enabled``).

    Returns the number of objects frozen (0 if not enabled).
    """
    if not enabled:
        return 0
    gc.collect()
    gc.freeze()
    first, second, _third = gc.get_threshold()
    gc.set_threshold(first, second, FULL_COLLECTION_EVERY)
    return gc.get_freeze_count()
