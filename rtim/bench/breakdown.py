"""Where the time goes per event, without a profiler: each stage of the worker timed alone.

The worker's per-record work is replayed in-process on the bench workload with the very
functions the worker calls, in its batch structure, each stage timed with `perf_counter`
around the whole batch (so the timer costs nothing per event):

- ``decode``: `Codec.decode` of the Avro bytes; ``validate``: `validate_record`;
  ``event``: `make_event`;
- ``engine``: `Engine.on_event` (profile `apply` + the `StrategyDecider`: requests answered,
  triggers, attribution) — of which ``apply`` alone is timed separately;
- ``timers``: `Engine.on_timers` for each customer whose timer is due by the next event's time
  (the worker's event-time clock): delayed triggers and expired attributions;
- ``encode_outputs``: every emitted record encoded as the worker does (`OutputEncoder`: the
  specialised DecisionRecord/Decision encoder, the codec for the rest), per schema as well;
- ``encode_profiles`` and ``rocksdb_write``: the changed profiles of each batch, encoded and
  written with `PartitionStore.write` (one WriteBatch), as `_persist` does.

Not included: Kafka client calls (consume, produce, flush, acks), the changelog produce, the
timer heap's upkeep, and the learner/registry threads; the difference between the measured
per-event cost in the live run and the sum here is that share. Models: the live run's decider scores
with learned models once snapshots exist; here it uses the priors (no model yet), which
costs slightly less per candidate.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rtim.bench.timerheap import ReplayTimers
from rtim.bench.workload import Item
from rtim.settings import Settings

__all__ = ["measure_breakdown"]


def measure_breakdown(
    settings: Settings, items: list[Item], state_dir: Path, batch_size: int | None = None
) -> dict[str, Any]:
    """Per-event microseconds of each worker stage over `items` (in their order)."""
    from rtim.core.engine import Emit, StepContext, StepResult
    from rtim.core.events import KIND_BY_TOPIC, make_event
    from rtim.core.learning import ModelSet
    from rtim.core.profile import Profile, apply, encode_profile, new_profile
    from rtim.core.validation import validate_record
    from rtim.serde.codec import Codec
    from rtim.serde.fastencode import OutputEncoder
    from rtim.worker.service import build_engine, load_configured_strategy
    from rtim.worker.store import PartitionMeta, PartitionStore

    codec = Codec.from_settings(settings)
    outputs = OutputEncoder(codec)  # the worker's output encoding
    engine = build_engine(settings, load_configured_strategy(settings), ModelSet())
    size = batch_size or settings.batch_size
    encoded = [
        (KIND_BY_TOPIC[i.topic], i.schema, i.key.encode(), codec.encode(i.schema, i.record))
        for i in items
    ]
    store = PartitionStore(state_dir)
    profiles: dict[str, Profile] = {}
    timers = ReplayTimers()
    totals: defaultdict[str, float] = defaultdict(float)
    per_schema_s: defaultdict[str, float] = defaultdict(float)
    per_schema_n: Counter[str] = Counter()
    per_kind_s: defaultdict[str, float] = defaultdict(float)
    per_kind_n: Counter[str] = Counter()
    now_ms = int(time.time() * 1000)
    offsets: dict[str, int] = defaultdict(int)
    pc = time.perf_counter

    def keep(
        customer_id: str, result: StepResult, changed: dict[str, Profile], emits: list[Emit]
    ) -> None:
        if not result.applied:
            return
        before = profiles.get(customer_id)
        profiles[customer_id] = changed[customer_id] = result.profile
        emits.extend(result.emits)
        timers.note(customer_id, before, result.profile)

    try:
        for start in range(0, len(encoded), size):
            chunk = encoded[start : start + size]
            t = pc()
            decoded = [(k, s, key, codec.decode(v, expected=s)[1]) for k, s, key, v in chunk]
            t1 = pc()
            for _k, s, key, record in decoded:
                validate_record(
                    s, record, now_ms=now_ms, max_future_ms=settings.max_future_ms, key=key
                )
            t2 = pc()
            events = []
            for k, _s, _key, record in decoded:
                offsets[k] += 1
                events.append(make_event(k, record, offsets[k]))
            t3 = pc()
            totals["decode"] += t1 - t
            totals["validate"] += t2 - t1
            totals["event"] += t3 - t2
            # apply alone, on copies of the same profiles (pure: nothing is changed)
            t = pc()
            shadow: dict[str, Profile] = {}
            for e in events:
                before = shadow.get(e.customer_id) or profiles.get(e.customer_id)
                shadow[e.customer_id] = apply(before or new_profile(e.customer_id), e)
            totals["apply"] += pc() - t
            changed: dict[str, Profile] = {}
            emits: list[Emit] = []
            ctx = StepContext(partition=0, input_offsets=dict(offsets))
            for e in events:
                for customer_id in timers.due_by(e.ts):
                    t = pc()
                    fired = engine.on_timers(profiles[customer_id], e.ts, ctx)
                    totals["timers"] += pc() - t
                    totals["timer_steps"] += 1
                    keep(customer_id, fired, changed, emits)
                profile = profiles.get(e.customer_id) or new_profile(e.customer_id)
                t = pc()
                result = engine.on_event(profile, e, ctx)
                dt = pc() - t
                per_kind_s[e.kind] += dt
                per_kind_n[e.kind] += 1
                keep(e.customer_id, result, changed, emits)
            for emit in emits:
                t = pc()
                outputs.encode(emit.schema, emit.record)
                per_schema_s[emit.schema] += pc() - t
                per_schema_n[emit.schema] += 1
            t = pc()
            values: dict[str, bytes | None] = {c: encode_profile(p) for c, p in changed.items()}
            t1 = pc()
            store.write(values, [], [], PartitionMeta())
            totals["encode_profiles"] += t1 - t
            totals["rocksdb_write"] += pc() - t1
            totals["profiles_written"] += len(values)
    finally:
        store.close()
    n = len(encoded)
    totals["engine"] = sum(per_kind_s.values())
    totals["encode_outputs"] = sum(per_schema_s.values())

    def us(seconds: float, count: int) -> float:
        return round(seconds / count * 1e6, 2) if count else 0.0

    stages = [
        "decode",
        "validate",
        "event",
        "engine",
        "timers",
        "encode_outputs",
        "encode_profiles",
        "rocksdb_write",
    ]
    per_event = {name: us(totals[name], n) for name in stages}
    return {
        "events": n,
        "batch_size": size,
        "us_per_event": per_event,
        "us_per_event_total": round(sum(per_event.values()), 2),
        "apply_us_per_event": us(totals["apply"], n),
        "timer_steps_per_event": round(totals["timer_steps"] / n, 3) if n else 0.0,
        "engine_us_by_kind": {k: us(per_kind_s[k], per_kind_n[k]) for k in sorted(per_kind_n)},
        "encode_us_by_schema": {
            s: us(per_schema_s[s], per_schema_n[s]) for s in sorted(per_schema_n)
        },
        "outputs_per_event": round(sum(per_schema_n.values()) / n, 3) if n else 0.0,
        "profiles_written_per_event": round(totals["profiles_written"] / n, 3) if n else 0.0,
    }
