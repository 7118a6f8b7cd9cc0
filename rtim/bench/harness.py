"""The bench run: every phase on one broker, the real worker, baselines, targets met or missed.

Phases (each figure states its warm-up; wall-clock is `time.perf_counter`):

1. broker (embedded Tansu on a free port unless ``RTIM_BROKER`` is set), the declared topics
   under a unique prefix, a temporary state directory;
2. the workload is generated and Avro-encoded in memory (before anything is timed);
3. the profile preamble (attributes, consent) is produced and the worker — the real
   `WorkerService` with its learner, in a child process — started on it: its warm-up;
4. **ingest**: the mix is produced in one burst; the rate counts from the moment the burst is
   acknowledged (no producer competing for the CPU) and after the first 5 % of it;
5. **decisions**: a backlog of requests is produced in one burst and answered; same window;
6. **request latency**: requests paced at a light and at the offered rate while the worker
   runs live, the first seconds excluded; latency = decision consumed - request produced,
   measured at the client;
7. **outcome → model**: outcomes for decisions of step 6, until a snapshot that includes the
   training example each caused is read from ``rtim.models``;
8. baselines on the same topics and records: raw consume, naive Faust + table, broker echo;
9. **memory**: encoded profile sizes of the real run; N profiles written through
   `PartitionStore`; the real worker started on them and driven over more customers than its
   profile cache holds; its RSS;
10. **breakdown**: the worker's stages timed one by one in-process (`rtim.bench.breakdown`).

Ingest and decisions also report the CPU time of the worker process and of the embedded broker
per record (`/proc`), which other load on a shared machine disturbs far less than wall time.
docs/performance.md describes every figure.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtim.bench.baselines import EchoRelay, faust_table, raw_consume, window_rate
from rtim.bench.loadgen import measure_outcome_to_model, measure_request_latency
from rtim.bench.memory import profile_sizes, read_profiles, touch_items, write_profiles
from rtim.bench.workerproc import Progress as WorkerProgress
from rtim.bench.workerproc import WorkerProcess, cpu_seconds
from rtim.bench.workload import (
    TOPIC_BY_KIND,
    Item,
    WorkloadSpec,
    generate_split,
    produce_items,
    request_record,
)
from rtim.errors import BrokerError, ConfigError
from rtim.settings import Settings

__all__ = ["TARGETS", "BenchOptions", "evaluate_targets", "run_bench"]

INPUT_TOPICS = tuple(topic for topic, _schema in TOPIC_BY_KIND.values())
WARMUP_FRACTION = 0.05
PROFILE_CACHE_PER_PARTITION = 50_000  # rtim.worker.runtime._CACHE_PER_PARTITION

# name → (result key, comparison, threshold, unit)
TARGETS: dict[str, tuple[str, str, float, str]] = {
    "ingest": ("ingest_events_per_s", ">=", 20_000, "events/s"),
    "ingest vs Faust+table": ("ratios.ingest_vs_faust_table", ">=", 10, "x"),
    "decisions": ("decisions_per_s", ">=", 5_000, "requests/s"),
    "request latency p99": ("request_latency_ms.p99", "<=", 10, "ms"),
    "outcome → model p99": ("outcome_to_model_ms_p99", "<=", 1_000, "ms"),
    "profile size": ("bytes_per_profile", "<=", 1_024, "bytes"),
}

Progress = Callable[[str], None]


@dataclass
class BenchOptions:
    """Sizes and durations of a bench run (defaults: the full run, about 3.5 minutes)."""

    events: int = 200_000
    customers: int = 10_000
    requests: int = 20_000
    rate: float = 1_000.0
    latency_s: float = 10.0
    low_rate: float = 100.0  # a second, light load: the latency without queueing
    low_latency_s: float = 5.0  # 0: skip
    warmup_s: float = 2.0
    outcomes: int = 400
    outcome_rate: float = 50.0
    faust_budget_s: float = 20.0
    echo_s: float = 5.0
    memory_profiles: int = 1_000_000
    memory_touch: int = 330_000
    seed: int = 7
    workload: str = "bench"
    profile: Path | None = None
    keep: bool = False
    quick: bool = False
    baselines: bool = True
    memory: bool = True
    breakdown_events: int = 40_000
    sample_ms: float = 0.0  # > 0: sample the worker thread's stack (ingest, decisions)
    session_timeout_ms: int = 3_000  # group joins take about half of it on the embedded broker

    @classmethod
    def quick_run(cls, **overrides: Any) -> BenchOptions:
        """A small run that goes through every phase (the smoke test; numbers mean little)."""
        values: dict[str, Any] = {
            "events": 4_000,
            "customers": 400,
            "requests": 1_000,
            "rate": 200.0,
            "latency_s": 1.5,
            "low_latency_s": 0.0,  # skipped
            "warmup_s": 0.5,
            "outcomes": 30,
            "outcome_rate": 60.0,
            "faust_budget_s": 1.0,
            "echo_s": 0.5,
            "memory_profiles": 20_000,
            "memory_touch": 2_000,
            "breakdown_events": 2_000,
            "session_timeout_ms": 1_500,
            "quick": True,
        }
        values.update(overrides)
        return cls(**values)

    def validate(self) -> None:
        """ConfigError for sizes that cannot work."""
        for name in ("events", "customers", "requests", "outcomes", "memory_profiles"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("rate", "low_rate", "outcome_rate", "latency_s", "faust_budget_s", "echo_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be positive")
        if self.warmup_s < 0 or self.low_latency_s < 0:
            raise ConfigError("the latency warm-up cannot be negative")
        if self.workload not in ("bench", "sim"):
            raise ConfigError(f"--workload must be `bench` or `sim`, not {self.workload!r}")


def _noop(_: str) -> None:
    pass


# --- environment --------------------------------------------------------------------------------


@dataclass
class _Env:
    settings: Settings
    work: Path
    embedded: bool
    broker_pid: int | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def _environment(base: Settings, options: BenchOptions) -> Iterator[_Env]:
    """A broker, a unique topic prefix with the declared topics, a temporary directory."""
    from rtim.kafka.broker import EmbeddedBroker
    from rtim.kafka.topics import ensure_topics

    work = Path(tempfile.mkdtemp(prefix="rtim-bench-"))
    broker: EmbeddedBroker | None = None
    prefix = f"{base.topic_prefix}bench-{uuid.uuid4().hex[:8]}."
    try:
        if not os.environ.get("RTIM_BROKER"):
            broker = EmbeddedBroker(0, log_dir=work / "broker").start()
        settings = base.model_copy(
            update={
                "broker": broker.bootstrap if broker is not None else base.broker,
                "topic_prefix": prefix,
                "data_dir": work / "state",
                "session_timeout_ms": min(base.session_timeout_ms, options.session_timeout_ms),
                "log_level": "warning" if base.log_level in ("debug", "info") else base.log_level,
            }
        )
        ensure_topics(settings)
        yield _Env(settings, work, broker is not None, broker.pid if broker is not None else None)
    finally:
        if broker is not None:
            broker.stop()  # memory storage: the run's topics go with it
        elif not options.keep:
            _delete_topics(base, prefix)
        if options.keep:
            print(f"rtim bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _delete_topics(base: Settings, prefix: str) -> None:
    """On a shared cluster, remove the topics of this run (all under its unique prefix)."""
    from rtim.kafka.admin import admin_client

    try:
        admin = admin_client(base)
        mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if mine:
            for future in admin.delete_topics(mine, operation_timeout=30).values():
                future.result()
    except Exception:  # best effort: the unique prefix keeps them apart anyway
        pass


# --- producing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Encoded:
    topic: str
    key: bytes
    value: bytes
    ts: int


def _encode(settings: Settings, items: list[Item]) -> list[_Encoded]:
    from rtim.serde.codec import Codec

    codec = Codec.from_settings(settings)
    physical = {t: settings.topic(t) for t in INPUT_TOPICS}
    out = []
    for item in items:
        topic = physical[item.topic]
        value = codec.encode(item.schema, item.record, topic)
        out.append(_Encoded(topic, item.key.encode(), value, item.ts))
    return out


def _burst(settings: Settings, records: list[_Encoded]) -> float:
    """Produce pre-encoded records as fast as the client goes; perf_counter once all are acked."""
    from confluent_kafka import Producer

    from rtim.kafka.config import producer_config

    producer = Producer(producer_config(settings, **{"linger.ms": 10}))
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for n, r in enumerate(records):
        while True:
            try:
                producer.produce(r.topic, r.value, r.key, timestamp=r.ts, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        if n % 5000 == 0:
            producer.poll(0)
    if producer.flush(120) or errors:
        raise BrokerError(f"producing the bench records failed: {errors[:1] or 'timeout'}")
    return time.perf_counter()


def _request_backlog(options: BenchOptions, customers: list[str]) -> list[Item]:
    rng = random.Random(options.seed + 1)
    now = int(time.time() * 1000)
    topic, schema = TOPIC_BY_KIND["request"]
    items = []
    for i in range(options.requests):
        cid = customers[int(len(customers) * rng.random() ** 2)]
        channel = "web" if rng.random() < 0.8 else "call_center"
        record = request_record(f"bk{i}", cid, now - options.requests + i, channel, rng)
        items.append(Item(topic, schema, cid, record["ts"], record))
    return items


# --- measuring ----------------------------------------------------------------------------------


def _window(
    timeline: list[tuple[float, int, int, int]], base: int, total: int, not_before: float
) -> dict[str, Any]:
    """Rate of the `total` records after `base`: from `not_before` and the first 5 %, to the end.

    `timeline` holds (perf_counter, records, applied, decisions) after each worker batch.
    """
    target = base + total
    warm = base + max(1, int(total * WARMUP_FRACTION))
    end = next((p for p in timeline if p[1] >= target), None)
    if end is None:
        raise BrokerError("the worker timeline does not cover the phase")
    before = [p for p in timeline if p[1] <= base]
    t0 = before[-1][0] if before else timeline[0][0]
    start = next((p for p in timeline if p[0] >= not_before and warm <= p[1] < target), None)
    incl = window_rate(t0, base, end[0], end[1])
    if start is None:  # the whole phase fitted in the burst: no clean window
        return {
            "events_per_s": round(incl, 1),
            "events_per_s_incl_warmup": round(incl, 1),
            "window_events": total,
            "window_s": round(end[0] - t0, 3),
            "phase_s": round(end[0] - t0, 3),
            "window": "whole phase (it ended before the burst was acknowledged)",
        }
    return {
        "events_per_s": round(window_rate(start[0], start[1], end[0], end[1]), 1),
        "events_per_s_incl_warmup": round(incl, 1),
        "window_events": end[1] - start[1],
        "window_s": round(end[0] - start[0], 3),
        "phase_s": round(end[0] - t0, 3),
        "window": f"after the burst was acknowledged and the first {WARMUP_FRACTION:.0%}",
    }


class _CpuMeter:
    """CPU used by the worker and the embedded broker from now on, per record processed.

    CPU time is far less disturbed by other load on a shared machine than wall time; the
    single-core rate it implies (1 / CPU per record) is what the worker would do alone.
    """

    def __init__(self, worker: WorkerProcess, env: _Env) -> None:
        self.worker, self.env = worker, env
        self.t = time.perf_counter()
        progress = worker.progress()
        self.records, self.ack_wait, self.flushes = (
            progress.records,
            progress.ack_wait_s,
            progress.flushes,
        )
        self.collector_s, self.collections = progress.collector_s, progress.collections
        self.worker_cpu = worker.cpu()
        self.split = worker.cpu_split()
        self.learner_cpu = worker.learner_cpu()
        self.broker_cpu = cpu_seconds(env.broker_pid)

    def read(self) -> dict[str, Any]:
        progress = self.worker.progress()
        records = progress.records - self.records
        wall = time.perf_counter() - self.t
        worker_cpu = self.worker.cpu() - self.worker_cpu
        split = {
            kind: seconds - self.split[kind] for kind, seconds in self.worker.cpu_split().items()
        }
        ack_wait = progress.ack_wait_s - self.ack_wait
        out: dict[str, Any] = {
            "cpu_window_records": records,
            "worker_cpu_s": round(worker_cpu, 2),
            "worker_cpu_share": round(worker_cpu / wall, 2) if wall else None,
            "worker_cpu_us_per_record": round(worker_cpu / records * 1e6, 1) if records else None,
            "records_per_worker_cpu_s": round(records / worker_cpu, 1) if worker_cpu else None,
            # where the worker's CPU went: its pipeline thread, librdkafka's threads, the rest
            "worker_cpu_us_per_record_by_thread": {
                kind: round(seconds / records * 1e6, 1) if records else None
                for kind, seconds in split.items()
            },
            # the share of the time the pipeline thread computed, and waited for acks
            "pipeline_busy_share": round(split["pipeline"] / wall, 3) if wall else None,
            "ack_wait_share": round(ack_wait / wall, 3) if wall else None,
            "flushes": progress.flushes - self.flushes,
            # the cyclic garbage collector's share of the time (RTIM_GC_TUNED), and its runs
            "collector_share": round((progress.collector_s - self.collector_s) / wall, 3)
            if wall
            else None,
            "collections": progress.collections - self.collections,
            # the learner's own process (RTIM_LEARNER_PROCESS), not in the worker's figures
            "learner_cpu_s": round(self.worker.learner_cpu() - self.learner_cpu, 2),
        }
        if self.env.broker_pid is not None:
            broker_cpu = cpu_seconds(self.env.broker_pid) - self.broker_cpu
            out["broker_cpu_s"] = round(broker_cpu, 2)
            out["broker_cpu_share"] = round(broker_cpu / wall, 2) if wall else None
        return out


def _lookup(result: dict[str, Any], dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with its measured value: met, missed or not measured."""
    out = []
    for name, (key, op, threshold, unit) in TARGETS.items():
        value = _lookup(result, key)
        if value is None:
            status = "not measured"
        elif op == ">=":
            status = "met" if value >= threshold else "missed"
        else:
            status = "met" if value <= threshold else "missed"
        out.append(
            {"name": name, "key": key, "target": f"{op} {threshold:g} {unit}", "value": value,
             "status": status}
        )  # fmt: skip
    return out


# --- the run ----------------------------------------------------------------------------------


def run_bench(options: BenchOptions, base: Settings, progress: Progress = _noop) -> dict[str, Any]:
    """Run every phase; return the result (keys documented in docs/performance.md)."""
    options.validate()
    started = time.perf_counter()
    result: dict[str, Any] = {
        "rtim_bench": 1,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "quick": options.quick,
        "profiled": options.profile is not None,
    }
    notes = [
        "Wall-clock via time.perf_counter; each rate states the warm-up it excludes.",
        "The machine is shared while this is measured; final figures are to be taken on an "
        "idle machine.",
    ]
    if options.profile is not None:
        notes.append("The worker ran under cProfile: its rates are slowed by the profiler.")
    if options.quick:
        notes.append("A --quick run: sizes are tiny, the figures only show that it works.")
    with _environment(base, options) as env:
        settings = env.settings
        result["broker"] = "embedded Tansu (memory)" if env.embedded else settings.broker
        result["topic_prefix"] = settings.topic_prefix
        result["strategy"] = _strategy_facts(settings)
        customers, produced = _worker_phases(env, options, result, notes, progress)
        result["sizes"]["input_records"] = produced
        if options.profile is not None:
            result["profile"] = _profile_summary(options.profile)
        if options.baselines:
            _baselines(env, options, customers, produced, result, progress)
        sizes = profile_sizes(Path(settings.data_dir))
        result["profiles"] = sizes
        result["bytes_per_profile"] = sizes.get("mean_bytes")
        if options.memory:
            result["memory"] = _memory(env, options, progress)
            result["worker_rss_bytes_1m"] = (
                result["memory"]["worker_rss_bytes"] if options.memory_profiles >= 10**6 else None
            )
        if options.breakdown_events:
            progress(f"breakdown: the worker's stages over {options.breakdown_events} events")
            result["breakdown"] = _breakdown(env, options, result)
    result["notes"] = notes + env.notes
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = evaluate_targets(result)
    return result


def _strategy_facts(settings: Settings) -> dict[str, Any]:
    from rtim.worker.service import load_configured_strategy

    strategy = load_configured_strategy(settings)
    return {
        "file": str(settings.strategy),
        "version": strategy.version,
        "offers": len(strategy.offers),
        "channels": len(strategy.channels),
    }


def _prepare_workload(
    env: _Env, options: BenchOptions, result: dict[str, Any]
) -> tuple[list[Item], list[_Encoded], list[str]]:
    """(preamble items, encoded mix, customer ids) of the bench workload, or of `rtim.sim`."""
    from rtim.worker.service import load_configured_strategy

    strategy = load_configured_strategy(env.settings)
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    spec = WorkloadSpec(
        options.events, options.customers, options.seed, int(time.time() * 1000), offers=offers
    )
    preamble, mix_iter = generate_split(spec)
    mix = list(mix_iter)
    t = time.perf_counter()
    encoded = _encode(env.settings, mix)
    encode_s = time.perf_counter() - t
    by_topic: dict[str, int] = {}
    for item in (*preamble, *mix):
        by_topic[item.topic] = by_topic.get(item.topic, 0) + 1
    result["workload"] = {
        "generator": "rtim.bench.workload",
        "seed": options.seed,
        "events": len(preamble) + len(mix),
        "customers": options.customers,
        "preamble_events": len(preamble),
        "mix_events": len(mix),
        "events_by_topic": by_topic,
        "mix_avro_bytes": sum(len(e.value) for e in encoded),
        "encode_us_per_event": round(encode_s / max(1, len(mix)) * 1e6, 2),
        "event_time_span_s": spec.span_ms // 1000,
    }
    return preamble, encoded, [f"c{i:07d}" for i in range(options.customers)]


def _worker_phases(
    env: _Env,
    options: BenchOptions,
    result: dict[str, Any],
    notes: list[str],
    progress: Progress,
) -> tuple[list[str], int]:
    """Preamble, ingest, decisions, latency and outcomes on one live worker.

    Returns the customer ids and the number of input records produced.
    """
    settings = env.settings
    if options.workload == "sim":
        return _sim_ingest(env, options, result, notes, progress)
    progress("generating and encoding the workload")
    preamble, mix, customers = _prepare_workload(env, options, result)
    result["sizes"] = _sizes(options, len(preamble) + len(mix))
    progress(f"worker warm-up: profile preamble of {len(preamble)} events")
    produce_items(settings, preamble)
    worker = WorkerProcess(
        settings, learner=True, profile_path=options.profile, sample_ms=options.sample_ms
    ).start()
    try:
        t = time.perf_counter()
        worker.wait_ready(120)
        result["worker_start_s"] = round(time.perf_counter() - t, 2)
        worker.wait_until(lambda p: p.records >= len(preamble), 300, "preamble processed")
        base = worker.progress().records

        progress(f"ingest: {len(mix)} events produced in one burst")
        acked = _burst(settings, mix)
        cpu = _CpuMeter(worker, env)
        total = len(mix)
        del mix
        if options.sample_ms:
            worker.samples()  # start counting now
        worker.wait_until(lambda p: p.records >= base + total, 1800, "mix processed")
        ingest = _window(worker.timeline(), base, total, acked)
        ingest.update(cpu.read())
        if options.sample_ms:
            ingest["stack_samples"] = worker.samples()
        ingest["warmup"] = "the preamble (worker start, first decisions) is not counted"
        result["ingest"] = ingest
        result["ingest_events_per_s"] = ingest["events_per_s"]
        result["ingest_events_per_worker_cpu_s"] = ingest["records_per_worker_cpu_s"]
    except BaseException:
        worker.kill()
        raise
    produced = len(preamble) + total
    return _live_phases(env, options, worker, customers, produced, result, notes, progress)


def _sizes(options: BenchOptions, events: int) -> dict[str, Any]:
    return {
        "events": events,
        "customers": options.customers,
        "decision_backlog": options.requests,
        "latency_requests": int(options.rate * (options.latency_s + options.warmup_s)),
        "outcomes": options.outcomes,
        "memory_profiles": options.memory_profiles if options.memory else 0,
    }


def _sim_ingest(
    env: _Env, options: BenchOptions, result: dict[str, Any], notes: list[str], progress: Progress
) -> tuple[list[str], int]:
    """The ingest phase on the simulator's stream (`rtim.sim.driver.preload`)."""
    try:
        from rtim.sim.driver import preload
        from rtim.sim.population import customer_id_of
    except ImportError as exc:
        raise ConfigError(f"--workload sim needs rtim.sim.driver.preload ({exc})") from None
    settings = env.settings
    progress(f"rtim.sim: preloading {options.events} events")
    t = time.perf_counter()
    counts = preload(settings, options.events, options.customers, options.seed)
    total = sum(counts.values())
    result["workload"] = {
        "generator": "rtim.sim.driver.preload",
        "seed": options.seed,
        "events": total,
        "customers": options.customers,
        "events_by_kind": counts,
        "preload_s": round(time.perf_counter() - t, 2),
    }
    result["sizes"] = _sizes(options, total)
    worker = WorkerProcess(settings, learner=True, profile_path=options.profile).start()
    try:
        t = time.perf_counter()
        worker.wait_ready(120)
        result["worker_start_s"] = round(time.perf_counter() - t, 2)
        progress(f"ingest: {total} preloaded events")
        cpu = _CpuMeter(worker, env)
        worker.wait_until(lambda p: p.records >= total, 1800, "preloaded events processed")
        ingest = _window(worker.timeline(), 0, total, 0.0)
        ingest.update(cpu.read())
        ingest["warmup"] = "no separate preamble: the customers' joining events are in the window"
        result["ingest"] = ingest
        result["ingest_events_per_s"] = ingest["events_per_s"]
        result["ingest_events_per_worker_cpu_s"] = ingest["records_per_worker_cpu_s"]
    except BaseException:
        worker.kill()
        raise
    customers = [customer_id_of(i) for i in range(options.customers)]
    return _live_phases(env, options, worker, customers, total, result, notes, progress)


def _live_phases(  # noqa: PLR0917 - private; the phases share their state
    env: _Env,
    options: BenchOptions,
    worker: WorkerProcess,
    customers: list[str],
    produced: int,
    result: dict[str, Any],
    notes: list[str],
    progress: Progress,
) -> tuple[list[str], int]:
    """Decisions, latency and outcomes on the running worker; then stop it."""
    settings = env.settings
    try:
        done = worker.progress()
        progress(f"decisions: a backlog of {options.requests} requests")
        base, base_decisions = done.records, done.decisions
        acked = _burst(settings, _encode(settings, _request_backlog(options, customers)))
        cpu = _CpuMeter(worker, env)
        if options.sample_ms:
            worker.samples()
        done = worker.wait_until(
            lambda p: p.records >= base + options.requests, 1800, "backlog answered"
        )
        decisions = _window(worker.timeline(), base, options.requests, acked)
        decisions.update(cpu.read())
        if options.sample_ms:
            decisions["stack_samples"] = worker.samples()
        decisions["decisions_emitted"] = done.decisions - base_decisions
        result["decisions"] = decisions
        result["decisions_per_s"] = decisions["events_per_s"]
        result["decisions_per_worker_cpu_s"] = decisions["records_per_worker_cpu_s"]

        low_sent = 0
        if options.low_latency_s:
            progress(f"request latency: {options.low_rate:g} requests/s (light load)")
            cpu = _CpuMeter(worker, env)
            low = measure_request_latency(
                settings,
                customers,
                rate=options.low_rate,
                duration_s=options.low_latency_s,
                warmup_s=min(options.warmup_s, 1.0),
                id_prefix="low",
                keep_decisions=False,
            )
            result["request_latency_low_load"] = {**low.summary(), **cpu.read()}
            low_sent = low.sent + 1

        progress(f"request latency: {options.rate:g} requests/s for {options.latency_s:g} s")
        cpu = _CpuMeter(worker, env)  # a worker_cpu_share near 1: it is at its capacity
        latency = measure_request_latency(
            settings,
            customers,
            rate=options.rate,
            duration_s=options.latency_s,
            warmup_s=options.warmup_s,
        )
        result["request_latency"] = {**latency.summary(), **cpu.read()}
        result["request_latency_ms"] = {
            "p50": latency.latency_ms["p50"],
            "p99": latency.latency_ms["p99"],
            "p999": latency.latency_ms["p999"],
            "max": latency.latency_ms["max"],
            "offered_requests_per_s": options.rate,
        }
        if latency.answered < latency.measured:
            notes.append(
                f"{latency.measured - latency.answered} of {latency.measured} measured requests "
                "were not answered within the drain time (they are not in the percentiles)."
            )
        if latency.late_sends:
            notes.append(
                f"{latency.late_sends} requests left the load generator more than 5 ms late."
            )

        progress(f"outcome → model: {options.outcomes} outcomes")
        outcomes = measure_outcome_to_model(
            settings, latency.decisions, count=options.outcomes, rate=options.outcome_rate
        )
        result["outcome_to_model"] = outcomes.summary()
        result["outcome_to_model_ms_p99"] = outcomes.latency_ms["p99"] if outcomes.learned else None
        result["worker_rss"] = {"customers": options.customers, **worker.rss()}
        final = worker.stop()
    except BaseException:
        worker.kill()
        raise
    result["worker_counters"] = final
    if final.get("dead_letters"):
        notes.append(f"The worker dead-lettered {final['dead_letters']} records.")
    # + the warm-up record of each timed producer
    return customers, produced + options.requests + low_sent + latency.sent + outcomes.sent + 2


def _baselines(  # noqa: PLR0917 - one private call site
    env: _Env,
    options: BenchOptions,
    customers: list[str],
    total: int,
    result: dict[str, Any],
    progress: Progress,
) -> None:
    settings = env.settings
    progress(f"baseline: raw consume of the {total} input records")
    raw = raw_consume(settings, INPUT_TOPICS, total)
    result["baseline_raw_consume"] = raw
    result["baseline_raw_consume_per_s"] = raw["events_per_s"]

    progress(f"baseline: naive Faust agent + RocksDB table (up to {options.faust_budget_s:g} s)")
    faust = faust_table(
        settings, INPUT_TOPICS, total, env.work / "faust", budget_s=options.faust_budget_s
    )
    result["baseline_faust_table"] = faust
    result["baseline_faust_table_events_per_s"] = faust["events_per_s"]

    rates = [options.rate] + ([options.low_rate] if options.low_latency_s else [])
    progress(f"baseline: broker echo at {' and '.join(f'{r:g}' for r in rates)} requests/s")
    with EchoRelay(settings, "rtim.requests", "rtim.decisions.web"):
        loads = [("baseline_echo_latency_ms", options.rate, "echo")]
        if options.low_latency_s:
            loads.append(("baseline_echo_latency_low_load_ms", options.low_rate, "echolow"))
        for key, rate, prefix in loads:
            result[key] = measure_request_latency(
                settings,
                customers,
                rate=rate,
                duration_s=options.echo_s,
                warmup_s=min(options.warmup_s, 1.0),
                answer_topics=("rtim.decisions.web",),
                id_prefix=prefix,
                keep_decisions=False,
            ).summary()

    ingest = result.get("ingest_events_per_s") or 0.0
    p99 = result.get("request_latency_ms", {}).get("p99")
    result["ratios"] = {
        "ingest_vs_faust_table": _ratio(ingest, faust["events_per_s"]),
        "ingest_vs_raw_consume": _ratio(ingest, raw["events_per_s"], 4),
        "request_p99_vs_echo_p99": _ratio(p99, result["baseline_echo_latency_ms"].get("p99")),
    }


def _breakdown(env: _Env, options: BenchOptions, result: dict[str, Any]) -> dict[str, Any]:
    """Per-stage microseconds per event, in-process, on the start of the same workload."""
    from rtim.bench.breakdown import measure_breakdown
    from rtim.worker.service import load_configured_strategy

    strategy = load_configured_strategy(env.settings)
    offers = [(o.id, tuple(o.channels)) for o in strategy.offers]
    n = min(options.breakdown_events, options.events)
    customers = max(1, min(options.customers, n // 20))
    spec = WorkloadSpec(n, customers, options.seed, int(time.time() * 1000), offers=offers)
    preamble, mix = generate_split(spec)
    out = measure_breakdown(env.settings, [*preamble, *mix], env.work / "breakdown")
    ingest = result.get("ingest_events_per_s")
    if ingest:
        live = 1e6 / ingest
        out["live_us_per_event"] = round(live, 2)
        out["outside_stages_us_per_event"] = round(live - out["us_per_event_total"], 2)
    out["workload"] = f"{n} events, {customers} customers (same generator and seed)"
    return out


def _ratio(a: float | None, b: float | None, digits: int = 2) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def _profile_summary(path: Path, top: int = 30) -> dict[str, Any]:
    """The worker thread's hottest functions (own and cumulative time) from the cProfile dump."""
    import io
    import pstats

    out: dict[str, Any] = {"stats_file": str(path)}
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(str(path), stream=buffer).sort_stats(order).print_stats(top)
        out[order] = buffer.getvalue()
    return out


def _at_least(records: int) -> Callable[[WorkerProgress], bool]:
    return lambda p: p.records >= records


def _memory(env: _Env, options: BenchOptions, progress: Progress) -> dict[str, Any]:
    """RocksDB bytes per customer at N profiles, and the real worker's RSS serving them."""
    from rtim.kafka.topics import ensure_topics, load_topics

    templates = [raw for _cid, raw in read_profiles(Path(env.settings.data_dir), limit=5000)]
    partitions = load_topics().groups["customer"]
    settings = env.settings.model_copy(
        update={
            "topic_prefix": env.settings.topic_prefix + "mem.",
            "data_dir": env.work / "state-memory",
        }
    )
    ensure_topics(settings)
    progress(f"memory: {options.memory_profiles} profiles written through PartitionStore")
    stores = write_profiles(Path(settings.data_dir), templates, options.memory_profiles, partitions)
    touched = min(options.memory_touch, options.memory_profiles)
    cache_cap = PROFILE_CACHE_PER_PARTITION * partitions
    out: dict[str, Any] = {
        "method": (
            f"{options.memory_profiles} profiles cloned from the {len(templates)} real profiles "
            "of this run, written through PartitionStore (the worker's store) into the partition "
            "of their key; then the real worker started on that state and one page view sent "
            f"for each of {touched} distinct customers (measured, not extrapolated)"
        ),
        "rocksdb": stores,
        "rocksdb_bytes_per_customer": stores["dir_bytes_per_customer"],
        "profile_cache_cap": cache_cap,
    }
    encoded = _encode(
        settings, touch_items(touched, options.memory_profiles, int(time.time() * 1000))
    )
    worker = WorkerProcess(settings, learner=True).start()
    curve: list[dict[str, int]] = []
    try:
        worker.wait_ready(120)
        idle = worker.rss()
        progress(f"memory: the worker over {touched} distinct customers")
        _burst(settings, encoded)
        steps = 6
        for k in range(1, steps + 1):
            target = len(encoded) * k // steps
            worker.wait_until(_at_least(target), 1800, "touch events processed")
            curve.append({"customers_touched": target, **worker.rss()})
        worker.stop()
    except BaseException:
        worker.kill()
        raise
    out["worker_rss_idle_bytes"] = idle["rss"]
    out["worker_rss_curve"] = curve
    out["worker_rss_bytes"] = curve[-1]["rss"]
    out["worker_rss_peak_bytes"] = curve[-1]["hwm"]
    first, last = curve[0], curve[-1]
    if last["customers_touched"] > first["customers_touched"]:
        slope = (last["rss"] - first["rss"]) / (
            last["customers_touched"] - first["customers_touched"]
        )
        out["rss_bytes_per_cached_customer"] = round(slope, 1)
    out["note"] = (
        f"the worker caches at most {cache_cap} decoded profiles ({partitions} partitions x "
        f"{PROFILE_CACHE_PER_PARTITION}); beyond that, customers are read from RocksDB when "
        "their events arrive. RSS also holds RocksDB memtables (the profiles written since the "
        f"last flush; bounded by 2 x {settings.store_write_buffer_mb} MiB per partition "
        "database, RTIM_STORE_WRITE_BUFFER_MB)"
    )
    return out
