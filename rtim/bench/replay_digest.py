"""A deterministic replay of the bench workload through the worker's per-record work, digested.

``python -m rtim.bench.replay_digest [--events N] [--workload W] [--json PATH]`` generates the
bench workload of W records (40 000, for 2 000 customers) for a fixed clock and seed, encodes
it as the producers would (Avro), and runs its first N records through what the worker does
with each in Python, in workload order, in one process: `Codec.decode`, `validate_record`,
`make_event`, the event-time timers due before it (`Engine.on_timers`), `Engine.on_event`,
every output through the worker's `OutputEncoder`, and the changed profiles every `batch`
records through `encode_profile`. The Kafka side, the event-time merge across partitions
and RocksDB are left out.

It prints a SHA-256 digest over every encoded output and profile, in order, and over every
final profile. Two uses:

- an optimisation that must not change behaviour keeps the digest (and the counts) as they
  were: compare the output of two checkouts;
- the same run is the workload for counting instructions (docs/performance.md): run it under
  ``valgrind --tool=callgrind`` with two values of N and divide the difference by the
  difference in N: start-up, imports and generating the workload (the same W) cancel out.
  Its digest does not depend on the hash seed.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rtim.bench import print_json
from rtim.bench.timerheap import ReplayTimers
from rtim.settings import Settings

__all__ = ["main", "replay_digest"]

DEFAULT_NOW_MS = 1_790_000_000_000  # the workload's fixed clock (2026-09-21)


def replay_digest(
    events: int | None = None,
    customers: int = 2_000,
    *,
    workload: int = 40_000,
    seed: int = 7,
    now_ms: int = DEFAULT_NOW_MS,
    batch: int = 2_000,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Replay the first `events` (all if None) of a bench workload of `workload` records; their
    counts and digest (see the module). ValueError if `events` is beyond the workload."""
    if events is None:
        events = workload
    if not 1 <= events <= workload:
        raise ValueError(f"events must be 1 to the workload's {workload}, got {events}")
    from rtim.bench.workload import WorkloadSpec, generate_split
    from rtim.core.engine import StepContext, StepResult
    from rtim.core.events import KIND_BY_TOPIC, make_event
    from rtim.core.learning import ModelSet
    from rtim.core.profile import Profile, encode_profile, new_profile
    from rtim.core.validation import validate_record
    from rtim.serde.codec import Codec
    from rtim.serde.fastencode import OutputEncoder
    from rtim.worker.service import build_engine, load_configured_strategy

    settings = settings or Settings()
    codec = Codec.from_settings(settings)
    strategy = load_configured_strategy(settings)
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    preamble, mix = generate_split(WorkloadSpec(workload, customers, seed, now_ms, offers=offers))
    # all W records are encoded whatever N, so that a count at two values of N cancels it out
    records = [
        (KIND_BY_TOPIC[i.topic], i.schema, i.key.encode(), codec.encode(i.schema, i.record))
        for i in [*preamble, *mix]
    ][:events]

    started = time.perf_counter()
    engine = build_engine(settings, strategy, ModelSet())
    outputs = OutputEncoder(codec)
    profiles: dict[str, Profile] = {}
    changed: dict[str, Profile] = {}
    timers = ReplayTimers()
    offsets: defaultdict[str, int] = defaultdict(int)
    ctx = StepContext(partition=0, input_offsets=offsets)
    digest = hashlib.sha256()
    by_schema: Counter[str] = Counter()
    timers_fired = 0
    # the records' event times span the two hours before the clock; nothing is in the future
    validate_at = now_ms + 86_400_000

    def take(customer_id: str, result: StepResult) -> None:
        if not result.applied:
            return
        before = profiles.get(customer_id)
        profiles[customer_id] = changed[customer_id] = result.profile
        timers.note(customer_id, before, result.profile)
        for emit in result.emits:
            digest.update(outputs.encode(emit.schema, emit.record))
            by_schema[emit.schema] += 1

    for n, (kind, schema, key, value) in enumerate(records, 1):
        record = codec.decode(value, expected=schema)[1]
        validate_record(
            schema, record, now_ms=validate_at, max_future_ms=settings.max_future_ms, key=key
        )
        offsets[kind] += 1
        event = make_event(kind, record, offsets[kind])
        for customer_id in timers.due_by(event.ts):
            result = engine.on_timers(profiles[customer_id], event.ts, ctx)
            timers_fired += result.applied
            take(customer_id, result)
        profile = profiles.get(event.customer_id) or new_profile(event.customer_id)
        take(event.customer_id, engine.on_event(profile, event, ctx))
        if n % batch == 0:
            for profile in changed.values():
                digest.update(encode_profile(profile))
            changed.clear()
    for customer_id in sorted(profiles):
        digest.update(encode_profile(profiles[customer_id]))
    return {
        "events": len(records),
        "workload": workload,
        "customers": customers,
        "seed": seed,
        "now_ms": now_ms,
        "outputs": sum(by_schema.values()),
        "outputs_by_schema": dict(sorted(by_schema.items())),
        "timers_fired": timers_fired,
        "profiles": len(profiles),
        "digest": digest.hexdigest(),
        "replay_s": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: print (and optionally write) the replay's counts and digest as JSON."""
    parser = argparse.ArgumentParser(prog="python -m rtim.bench.replay_digest")
    parser.add_argument("--events", type=int, default=None, help="default: the whole workload")
    parser.add_argument("--workload", type=int, default=40_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.workload < 1 or args.customers < 1:
        parser.error("--workload and --customers must be at least 1")
    if args.events is not None and not 1 <= args.events <= args.workload:
        parser.error(f"--events must be 1 to --workload ({args.workload})")
    result = replay_digest(args.events, args.customers, workload=args.workload, seed=args.seed)
    print_json(result, args.json)


if __name__ == "__main__":
    main()
