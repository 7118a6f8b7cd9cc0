"""The worker's garbage-collector tuning: start-up objects frozen, young and full collections
rarer, cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from rtim.worker.collector import FULL_COLLECTION_EVERY, YOUNG_COLLECTION_AFTER, tune_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.mark.usefixtures("restored_collector")
def test_tuned_collector_freezes_what_is_alive_and_collects_less_often() -> None:
    _first, second, _third = gc.get_threshold()
    assert tune_collector(True) == gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_COLLECTION_AFTER, second, FULL_COLLECTION_EVERY)
    # a cycle made after tuning is still found and freed
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    gc.collect()
    assert ref() is None


@pytest.mark.usefixtures("restored_collector")
def test_untuned_collector_keeps_cpythons_defaults() -> None:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert tune_collector(False) == 0
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == frozen
