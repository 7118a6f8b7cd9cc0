"""Prototypes of worker/core optimisations, measured against the code they would replace.

``python -m rtim.bench.prototypes [--events N] [--json PATH]`` builds a realistic state with
the real engine on the bench workload, then measures each proposal next to the current code,
best of several repetitions (the machine is shared):

1. `DecisionRecordEncoder`: the decision log record assembled from Avro pieces — a memo of
   the encoded bytes of each candidate (most are removed by a gate and identical from one
   decision to the next) and a specialised encoder for the feature map. Byte-for-byte equal
   to `Codec.encode("DecisionRecord", ...)`; checked on every record measured. The smaller
   variant: the same `Codec.encode` with the feature map's union branches named in fastavro's
   tuple notation (also byte-identical).
2. Profile cache of encoded bytes instead of decoded dicts: memory per cached customer
   (tracemalloc) against the decode it costs per event.
3. One event-id hash per event instead of three (applied: `apply` hashes once and reuses it).
4. Where an answered request spends its time (apply, features, decide, records, attribution).
5. With ``--live``: the real worker under process-level variants (GC settings, the learner
   in its own process), ingest rate and CPU per event.

Nothing here is used by the worker; docs/performance.md reports the results.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rtim.bench import print_json
from rtim.serde.codec import Codec
from rtim.serde.fastencode import DecisionRecordEncoder

__all__ = ["LIVE_VARIANTS", "DecisionRecordEncoder", "live_variants", "main", "run_prototypes"]

# the union branch of a feature value (DecisionRecord.features: null|boolean|long|double|string)
_BRANCH: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "long",
    float: "double",
    str: "string",
}


# --- measurements -------------------------------------------------------------------------------


def _best_us(fn: Callable[[], object], count: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(best / count * 1e6, 2)


def _replay(events: int, customers: int) -> tuple[list[Any], dict[str, Any], list[Any]]:
    """Run the real engine over the bench workload: (events, final profiles, emits)."""
    from rtim.bench.workload import WorkloadSpec, generate
    from rtim.core.engine import StepContext
    from rtim.core.events import KIND_BY_TOPIC, make_event
    from rtim.core.learning import ModelSet
    from rtim.core.profile import new_profile
    from rtim.settings import get_settings
    from rtim.worker.service import build_engine, load_configured_strategy

    settings = get_settings()
    strategy = load_configured_strategy(settings)
    engine = build_engine(settings, strategy, ModelSet())
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    spec = WorkloadSpec(events, customers, 7, int(time.time() * 1000), offers=offers)
    profiles: dict[str, Any] = {}
    emits: list[Any] = []
    seen: list[Any] = []
    offsets: dict[str, int] = {}
    ctx = StepContext(0, {})
    for item in generate(spec):
        kind = KIND_BY_TOPIC[item.topic]
        offsets[kind] = offsets.get(kind, 0) + 1
        event = make_event(kind, item.record, offsets[kind])
        seen.append(event)
        result = engine.on_event(
            profiles.get(event.customer_id) or new_profile(event.customer_id), event, ctx
        )
        if result.applied:
            profiles[event.customer_id] = result.profile
            emits.extend(result.emits)
    return seen, profiles, emits


def _decision_record(emits: list[Any]) -> dict[str, Any]:
    codec = Codec()
    fast = DecisionRecordEncoder(codec)
    records = [e.record for e in emits if e.schema == "DecisionRecord"][:5000]
    mismatches = sum(fast.encode(r) != codec.encode("DecisionRecord", r) for r in records)
    fresh = DecisionRecordEncoder(codec)  # the timed one starts with an empty memo

    def current() -> None:
        for r in records:
            codec.encode("DecisionRecord", r)

    def proposed() -> None:
        for r in records:
            fresh.encode(r)

    def hinted(r: Mapping[str, Any]) -> dict[str, Any]:
        # fastavro's tuple notation names the union branch: no branch-by-branch isinstance
        return {**r, "features": {k: (_BRANCH[type(v)], v) for k, v in r["features"].items()}}

    hinted_mismatches = sum(
        codec.encode("DecisionRecord", hinted(r)) != codec.encode("DecisionRecord", r)
        for r in records
    )

    def tuple_hinted() -> None:
        for r in records:
            codec.encode("DecisionRecord", hinted(r))

    now_us = _best_us(current, len(records))
    new_us = _best_us(proposed, len(records))
    hinted_us = _best_us(tuple_hinted, len(records))
    return {
        "records": len(records),
        "byte_identical": mismatches == 0 and hinted_mismatches == 0,
        "mismatches": mismatches + hinted_mismatches,
        "current_us": now_us,
        "proposed_us": new_us,
        "features_tuple_hinted_us": hinted_us,
        "saved_us_per_decision": round(now_us - new_us, 2),
        "memo_entries": len(fresh._memo),
        "mean_candidates": round(sum(len(r["candidates"]) for r in records) / len(records), 1),
        "mean_features": round(sum(len(r["features"]) for r in records) / len(records), 1),
    }


def _profile_cache(profiles: dict[str, Any]) -> dict[str, Any]:
    from rtim.core.profile import decode_profile, encode_profile

    encoded = [encode_profile(p) for p in profiles.values()]
    n = len(encoded)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    decoded = [decode_profile(e) for e in encoded]
    dict_bytes = tracemalloc.get_traced_memory()[0] - base
    del decoded
    base = tracemalloc.get_traced_memory()[0]
    copies = [bytes(bytearray(e)) for e in encoded]
    bytes_bytes = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del copies
    decode_us = _best_us(lambda: [decode_profile(e) for e in encoded], n)
    encode_us = _best_us(lambda: [encode_profile(p) for p in profiles.values()], n)
    return {
        "profiles": n,
        "mean_encoded_bytes": round(sum(map(len, encoded)) / n, 1),
        "decoded_dict_bytes_per_profile": round(dict_bytes / n, 1),
        "encoded_bytes_per_profile_in_memory": round(bytes_bytes / n, 1),
        "decode_us": decode_us,
        "encode_us": encode_us,
        "worker_cache_cap": 300_000,
        "cache_bytes_at_cap_decoded": int(dict_bytes / n * 300_000),
        "cache_bytes_at_cap_encoded": int(bytes_bytes / n * 300_000),
    }


def _event_hash(events: list[Any]) -> dict[str, Any]:
    from rtim.core.events import event_hash

    ids = [e.event_id for e in events]
    us = _best_us(lambda: [event_hash(i) for i in ids], len(ids))
    return {
        "event_hash_us": us,
        "calls_per_event_before": 3,
        "calls_per_event_now": 1,
        "saved_us_per_event": round(2 * us, 2),
    }


def _request_path(events: list[Any], profiles: dict[str, Any]) -> dict[str, Any]:
    """Split of one answered request, each part timed inside the same pass over the requests.

    Parts: `apply`, `compute_features`, `decide`, the Decision and DecisionRecord dicts, and
    `_remember` (caps, cooldowns, pending attribution) for decisions that act. The whole
    `Engine.on_event` is timed in its own passes; passes alternate, best of five each.
    """
    import gc

    from rtim.core.decisioning import DecisionTrigger
    from rtim.core.engine import StepContext
    from rtim.core.events import Event
    from rtim.core.features import compute_features
    from rtim.core.learning import ModelSet
    from rtim.core.profile import apply
    from rtim.settings import get_settings
    from rtim.worker.service import build_engine, load_configured_strategy

    settings = get_settings()
    strategy = load_configured_strategy(settings)
    engine = build_engine(settings, strategy, ModelSet())
    decider: Any = engine.decider
    # each request answered against its customer's final profile, as a new record
    cases = [
        (profiles[e.customer_id], Event(e.kind, e.event_id + "x", e.customer_id, e.ts, e.record))
        for e in events
        if e.kind == "request"
    ][-3000:]
    ctx = StepContext(0, {})
    pc = time.perf_counter
    zone = strategy.zone
    names = ("apply", "compute_features", "decide", "decision_dict", "log_record", "remember")

    def parts() -> list[float]:
        sums = [0.0] * len(names)
        for profile, e in cases:
            r = e.record
            t0 = pc()
            after = apply(profile, e)
            t1 = pc()
            f = compute_features(after, e.ts, channel=r["channel"], placement=r["placement"],
                                 context=r.get("context"), tz=zone)  # fmt: skip
            t2 = pc()
            result = decider.decide(after, f, DecisionTrigger.for_request(r), e.ts)
            t3 = pc()
            decision = result.decision()
            t4 = pc()
            result.log_record(f, ctx, decision)
            t5 = pc()
            if result.actions:
                decider._remember(after, result)
            t6 = pc()
            for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                sums[i] += dt
        return sums

    def whole() -> float:
        t = pc()
        for profile, e in cases:
            engine.on_event(profile, e, ctx)
        return pc() - t

    best_parts = [float("inf")] * len(names)
    best_whole = float("inf")
    for _ in range(5):
        gc.collect()
        best_whole = min(best_whole, whole())
        gc.collect()
        best_parts = [min(a, b) for a, b in zip(best_parts, parts(), strict=True)]
    n = len(cases)
    out: dict[str, Any] = {"requests": n, "on_event_us": round(best_whole / n * 1e6, 2)}
    for name, seconds in zip(names, best_parts, strict=True):
        out[f"{name}_us"] = round(seconds / n * 1e6, 2)
    out["unaccounted_us"] = round(out["on_event_us"] - sum(out[f"{name}_us"] for name in names), 2)
    return out


def _cache_miss(profiles: dict[str, Any], state_dir: Path, count: int) -> dict[str, Any]:
    """What a profile-cache miss costs: a RocksDB point read and a decode, `count` profiles."""
    import random

    from rtim.bench.memory import write_profiles
    from rtim.core.profile import decode_profile, encode_profile
    from rtim.worker.store import PartitionStore

    templates = [encode_profile(p) for p in list(profiles.values())[:2000]]
    write_profiles(state_dir, templates, count, 1)
    store = PartitionStore(state_dir / "customer" / "p0")
    try:
        keys = [f"m{i:07d}" for i in random.Random(3).sample(range(count), min(count, 20_000))]
        get_us = _best_us(lambda: [store.get(k) for k in keys], len(keys), 3)
        raws = [store.get(k) or b"" for k in keys]
        decode_us = _best_us(lambda: [decode_profile(r) for r in raws], len(raws), 3)
    finally:
        store.close()
    return {"profiles_in_store": count, "rocksdb_get_us": get_us, "decode_us": decode_us}


def _pending(events: list[Any], profiles: dict[str, Any]) -> dict[str, Any]:
    """Pending attributions of the customers who ask: all re-compressed per decision (now),
    or only the new entry against the one before (the proposal)."""
    from rtim.core import attribution

    asking = [profiles[e.customer_id] for e in events if e.kind == "request"][-3000:]
    lists = [attribution.pending_attributions(p) for p in asking]
    n = len(lists)
    if not n:
        return {"requests": 0}
    compress = attribution._compress
    decompress_us = _best_us(lambda: [attribution.pending_attributions(p) for p in asking], n)
    all_us = _best_us(lambda: [compress(entries) for entries in lists], n)
    last_us = _best_us(lambda: [compress(entries[-2:]) for entries in lists], n)
    return {
        "requests": n,
        "mean_pending": round(sum(map(len, lists)) / n, 1),
        "decompress_all_us": decompress_us,
        "compress_all_us": all_us,
        "compress_new_entry_only_us": last_us,
        "saved_us_per_decision": round(all_us - last_us, 2),
    }


def run_prototypes(
    events: int = 40_000, customers: int = 2_000, store_profiles: int = 200_000
) -> dict[str, Any]:
    """Measure every prototype on a replay of `events` bench events."""
    import tempfile

    seen, profiles, emits = _replay(events, customers)
    with tempfile.TemporaryDirectory(prefix="rtim-proto-") as tmp:
        miss = _cache_miss(profiles, Path(tmp), store_profiles)
    return {
        "events": events,
        "customers": customers,
        "request_path": _request_path(seen, profiles),
        "decision_record_encoding": _decision_record(emits),
        "profile_cache": _profile_cache(profiles),
        "profile_cache_miss": miss,
        "event_hash": _event_hash(seen),
        "pending_attributions": _pending(seen, profiles),
    }


LIVE_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "gc-untuned": {"gc_mode": "untuned"},
    "gc-off": {"gc_mode": "off"},
    "no-learner": {"learner": False},
}


def live_variants(
    events: int = 100_000, customers: int = 5_000, rounds: int = 2, variants: Sequence[str] = ()
) -> dict[str, Any]:
    """Ingest of the real worker under process-level variants, alternated round by round.

    Variants change nothing in the worker's code: garbage-collector settings of its process
    (``default``: tuned as `rtim worker` tunes it; ``gc-untuned``: CPython's defaults;
    ``gc-off``: an upper bound only), or no learner at all (``no-learner``). Each run gets its
    own topics and state on one broker, the same workload, and the bench's ingest window; the
    worker's CPU per event is reported next to the wall rate because it is far less disturbed
    by other load on the machine.
    """
    from rtim.bench.harness import (
        BenchOptions,
        _at_least,
        _burst,
        _CpuMeter,
        _encode,
        _environment,
        _window,
    )
    from rtim.bench.workerproc import WorkerProcess
    from rtim.bench.workload import WorkloadSpec, generate_split, produce_items
    from rtim.kafka.topics import ensure_topics
    from rtim.settings import get_settings
    from rtim.worker.service import load_configured_strategy

    chosen = list(variants or LIVE_VARIANTS)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in chosen}
    with _environment(get_settings(), BenchOptions()) as env:
        strategy = load_configured_strategy(env.settings)
        offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
        for r in range(rounds):
            for variant in chosen:
                settings = env.settings.model_copy(
                    update={
                        "topic_prefix": f"{env.settings.topic_prefix}v{r}{variant}.",
                        "data_dir": env.work / f"v{r}{variant}",
                    }
                )
                ensure_topics(settings)
                spec = WorkloadSpec(events, customers, 7, int(time.time() * 1000), offers=offers)
                preamble, mix_iter = generate_split(spec)
                mix = _encode(settings, list(mix_iter))
                produce_items(settings, preamble)
                worker = WorkerProcess(settings, **LIVE_VARIANTS[variant]).start()
                try:
                    worker.wait_ready(120)
                    worker.wait_until(_at_least(len(preamble)), 300, "preamble")
                    base = worker.progress().records
                    acked = _burst(settings, mix)
                    cpu = _CpuMeter(worker, env)
                    worker.wait_until(_at_least(base + len(mix)), 900, "mix")
                    window = _window(worker.timeline(), base, len(mix), acked)
                    window.update(cpu.read())
                    keys = ("events_per_s", "worker_cpu_us_per_record", "worker_cpu_share")
                    runs[variant].append({k: window[k] for k in keys})
                    worker.stop()
                except BaseException:
                    worker.kill()
                    raise
    return {
        "events": events,
        "customers": customers,
        "rounds": rounds,
        "runs": runs,
        "best_events_per_s": {v: max(x["events_per_s"] for x in rs) for v, rs in runs.items()},
        "best_cpu_us_per_event": {
            v: min(x["worker_cpu_us_per_record"] for x in rs) for v, rs in runs.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: print (and optionally write) the measurements as JSON."""
    parser = argparse.ArgumentParser(prog="python -m rtim.bench.prototypes")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--live",
        action="store_true",
        help="Also run the real worker under each process-level variant (a few minutes).",
    )
    args = parser.parse_args(argv)
    result = run_prototypes(args.events, args.customers)
    if args.live:
        result["live_variants"] = live_variants()
    print_json(result, args.json)


if __name__ == "__main__":
    main()
