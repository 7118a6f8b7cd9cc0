"""The worker's garbage-collector tuning: start-up objects frozen, young and full collections
rarer, cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from rtim.worker import collector
from rtim.worker.collector import (
    FULL_COLLECTION_EVERY,
    YOUNG_COLLECTION_AFTER,
    collections_between_batches,
    tune_collector,
)


@pytest.fixture
def restored_collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    monkeypatch.setattr(collector, "_tuned", collector._tuned)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()


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


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.mark.usefixtures("restored_collector")
def test_a_collection_due_during_a_batch_runs_after_it() -> None:
    tune_collector(True)
    with collections_between_batches():
        assert not gc.isenabled()
        ref = _cycle()
        kept = [[] for _ in range(YOUNG_COLLECTION_AFTER + 1_000)]  # a collection is due
        assert ref() is not None  # none ran inside the batch
    assert gc.isenabled()
    _one_more: list[int] = []  # the first allocation after the batch runs the due one
    assert ref() is None
    del kept


@pytest.mark.usefixtures("restored_collector")
def test_an_untuned_or_disabled_collector_is_left_as_it_is() -> None:
    collector._tuned = False
    with collections_between_batches():
        assert gc.isenabled()  # CPython's defaults: nothing held off
    tune_collector(True)
    gc.disable()
    with collections_between_batches():
        assert not gc.isenabled()
    assert not gc.isenabled()  # off stays off


def test_the_per_record_work_makes_no_reference_cycles() -> None:
    """What the young generation's threshold relies on: the per-record work on the bench
    workload (every input kind, decisions, timers, outputs and profiles encoded) leaves nothing
    for the cyclic collector, so rare young collections only delay work that finds no garbage."""
    from rtim.bench.workload import WorkloadSpec, generate
    from rtim.core.engine import StepContext
    from rtim.core.events import KIND_BY_TOPIC, make_event
    from rtim.core.learning import ModelSet
    from rtim.core.profile import Profile, encode_profile, new_profile
    from rtim.serde.codec import Codec
    from rtim.serde.fastencode import OutputEncoder
    from rtim.settings import Settings
    from rtim.worker.service import build_engine, load_configured_strategy

    settings = Settings()
    strategy = load_configured_strategy(settings)
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    items = list(generate(WorkloadSpec(12_000, 500, 3, 1_790_000_000_000, offers=offers)))
    engine = build_engine(settings, strategy, ModelSet())
    outputs = OutputEncoder(Codec())
    profiles: dict[str, Profile] = {}
    ctx = StepContext(0, {})
    counts = {"emits": 0, "timers": 0}

    def step(customer_id: str, result: Any) -> None:
        if result.applied:
            profiles[customer_id] = result.profile
            encode_profile(result.profile)
            for emit in result.emits:
                outputs.encode(emit.schema, emit.record)
                counts["emits"] += 1

    gc.collect()
    gc.disable()
    try:
        for offset, item in enumerate(items):
            event = make_event(KIND_BY_TOPIC[item.topic], item.record, offset)
            profile = profiles.get(event.customer_id) or new_profile(event.customer_id)
            if profile.get("timers") and profile["timers"][0][0] <= event.ts:
                result = engine.on_timers(profile, event.ts, ctx)
                counts["timers"] += result.applied
                step(event.customer_id, result)
                profile = profiles[event.customer_id]
            step(event.customer_id, engine.on_event(profile, event, ctx))
        found = gc.collect()
    finally:
        gc.enable()
    assert counts["emits"] > 1_000
    assert counts["timers"] > 0
    assert found == 0
