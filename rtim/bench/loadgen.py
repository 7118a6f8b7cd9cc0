"""Client-side latency: paced decision requests, and outcomes until the model has learned them.

Both measurements are taken where a channel or adapter would take them, outside the worker
process: a request's latency is `perf_counter` when its decision was consumed minus
`perf_counter` just before the request was handed to the producer (same process, so the same
clock); an outcome's latency runs until a model snapshot that includes the training example
it caused is read from `rtim.models` — the way the worker's model registry reads it.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from rtim.bench.workload import outcome_record, request_record
from rtim.errors import BrokerError, RtimError
from rtim.kafka.config import consumer_config, producer_config
from rtim.serde.codec import Codec
from rtim.settings import Settings

__all__ = [
    "LatencyResult",
    "OutcomeResult",
    "end_offsets",
    "measure_outcome_to_model",
    "measure_request_latency",
    "percentiles",
    "ready_producer",
]

_SWITCH_INTERVAL_S = 0.0002  # producer and consumer threads must not wait 5 ms for the GIL
PRODUCER_READY_S = 2.0  # a new idempotent producer's handshake takes 0.5-1 s here
WARMUP_CUSTOMER = "bench-warmup"


def ready_producer(settings: Settings, topic: str, key: bytes, value: bytes) -> Producer:
    """A producer for timed sends (no linger), past its idempotence handshake.

    A new idempotent producer holds its first records until the broker has given it a
    producer id (0.5-1 s on the embedded broker); one warm-up record, acknowledged before
    anything is timed, takes that out of the measurement.
    """
    producer = Producer(producer_config(settings, **{"linger.ms": 0}))
    producer.produce(topic, value, key)
    if producer.flush(PRODUCER_READY_S * 5):
        raise BrokerError("the load generator's warm-up record was not acknowledged")
    return producer


def percentiles(values_ms: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max (nearest rank) of `values_ms`; zeros when empty."""
    if not values_ms:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    ordered = sorted(values_ms)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))], 3)

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": round(ordered[-1], 3),
    }


def end_offsets(settings: Settings, topics: Sequence[str]) -> list[TopicPartition]:
    """Fresh (uncached) end offsets of every partition of the physical `topics`.

    On the embedded broker the high watermark can lag behind the last produce batch: a reader
    starting here may see some older records first, which every caller ignores (their ids
    are not among those it sent).
    """
    from confluent_kafka.admin import AdminClient

    from rtim.kafka.config import admin_config

    metadata = AdminClient(admin_config(settings)).list_topics(timeout=10)
    consumer = Consumer(consumer_config(settings, None))
    try:
        out: list[TopicPartition] = []
        for topic in topics:
            if topic not in metadata.topics:
                raise BrokerError(f"topic {topic} does not exist")
            for p in sorted(metadata.topics[topic].partitions):
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=10, cached=False
                )
                out.append(TopicPartition(topic, p, high))
        return out
    finally:
        consumer.close()


@dataclass
class LatencyResult:
    """Request → decision latency at a fixed offered rate."""

    offered_per_s: float
    duration_s: float
    warmup_s: float
    sent: int = 0
    measured: int = 0  # sent after the warm-up
    answered: int = 0  # of the measured
    achieved_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    late_sends: int = 0  # sends more than 5 ms behind schedule (the generator could not keep up)
    p50_by_second: list[float] = field(default_factory=list)  # a growing queue shows here
    decisions: list[dict[str, Any]] = field(default_factory=list)  # decoded, for outcomes

    def summary(self) -> dict[str, Any]:
        return {
            "offered_requests_per_s": self.offered_per_s,
            "achieved_requests_per_s": round(self.achieved_per_s, 1),
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "sent": self.sent,
            "measured": self.measured,
            "answered": self.answered,
            "unanswered": self.measured - self.answered,
            "late_sends": self.late_sends,
            **self.latency_ms,
            "p50_by_second": self.p50_by_second,
        }


class _Collector(threading.Thread):
    """Consumes answer topics from given offsets; remembers when each id was first seen."""

    def __init__(
        self, settings: Settings, start: list[TopicPartition], id_field: str, keep: bool
    ) -> None:
        super().__init__(name="rtim-bench-collector", daemon=True)
        self.settings = settings
        self.start_offsets = start
        self.id_field = id_field
        self.keep = keep
        self.seen: dict[str, float] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.stop_event = threading.Event()
        self.error: str | None = None
        self.undecodable = 0

    def run(self) -> None:
        codec = Codec.from_settings(self.settings)
        consumer = Consumer(consumer_config(self.settings, None, **{"fetch.wait.max.ms": 5}))
        consumer.assign(self.start_offsets)
        seen, field_name = self.seen, self.id_field
        try:
            while not self.stop_event.is_set():
                messages = consumer.consume(1000, 0.01)
                now = time.perf_counter()
                for message in messages:
                    if message.error() is not None:
                        continue
                    try:
                        _name, record = codec.decode(message.value() or b"")
                    except RtimError:
                        self.undecodable += 1
                        continue
                    rid = record.get(field_name)
                    if rid is not None and rid not in seen:
                        seen[rid] = now
                        if self.keep:
                            self.records[rid] = record
        except Exception as exc:  # surfaced to the caller
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            consumer.close()


def measure_request_latency(
    settings: Settings,
    customers: Sequence[str],
    *,
    rate: float,
    duration_s: float,
    warmup_s: float,
    answer_topics: Sequence[str] = ("rtim.decisions.web", "rtim.decisions.call_center"),
    request_topic: str = "rtim.requests",
    seed: int = 11,
    id_prefix: str = "lat",
    keep_decisions: bool = True,
    drain_s: float = 5.0,
) -> LatencyResult:
    """Offer requests at `rate` for `warmup_s + duration_s`; measure after the warm-up.

    Requests go to `request_topic` (80 % web, 20 % call centre) for random `customers`;
    answers are read from `answer_topics` (logical names) from their current end.
    """
    result = LatencyResult(rate, duration_s, warmup_s)
    physical_answers = [settings.topic(t) for t in answer_topics]
    collector = _Collector(
        settings, end_offsets(settings, physical_answers), "request_id", keep_decisions
    )
    collector.start()
    codec = Codec.from_settings(settings)
    topic = settings.topic(request_topic)
    warm = request_record(f"{id_prefix}-warmup", WARMUP_CUSTOMER, int(time.time() * 1000), "web")
    producer = ready_producer(
        settings, topic, WARMUP_CUSTOMER.encode(), codec.encode("DecisionRequest", warm, topic)
    )
    rng = random.Random(seed)
    total = int(rate * (warmup_s + duration_s))
    sent_at: dict[str, float] = {}
    measured_ids: list[str] = []
    interval = 1.0 / rate
    previous_switch = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    try:
        t0 = time.perf_counter()
        for i in range(total):
            due = t0 + i * interval
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
                now = time.perf_counter()
            elif now - due > 0.005:
                result.late_sends += 1
            cid = customers[int(len(customers) * rng.random() ** 2)]
            channel = "web" if rng.random() < 0.8 else "call_center"
            rid = f"{id_prefix}{i}"
            record = request_record(rid, cid, int(time.time() * 1000), channel, rng)
            value = codec.encode("DecisionRequest", record, topic=topic)
            sent = time.perf_counter()
            producer.produce(topic, value, cid.encode(), timestamp=record["ts"])
            producer.poll(0)
            sent_at[rid] = sent
            if sent - t0 >= warmup_s:
                measured_ids.append(rid)
        elapsed = time.perf_counter() - t0
        producer.flush(30)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and any(r not in collector.seen for r in measured_ids):
            time.sleep(0.01)
    finally:
        collector.stop_event.set()
        collector.join(10)
        sys.setswitchinterval(previous_switch)
    if collector.error:
        raise BrokerError(f"reading decisions failed: {collector.error}")
    result.sent = total
    result.measured = len(measured_ids)
    result.achieved_per_s = total / elapsed if elapsed > 0 else 0.0
    latencies = [
        (collector.seen[r] - sent_at[r]) * 1000 for r in measured_ids if r in collector.seen
    ]
    result.answered = len(latencies)
    result.latency_ms = percentiles(latencies)
    by_second: dict[int, list[float]] = {}
    for r in measured_ids:
        if r in collector.seen:
            second = int(sent_at[r] - t0)
            by_second.setdefault(second, []).append((collector.seen[r] - sent_at[r]) * 1000)
    result.p50_by_second = [percentiles(by_second[k])["p50"] for k in sorted(by_second)]
    result.decisions = [collector.records[r] for r in measured_ids if r in collector.records]
    return result


@dataclass
class OutcomeResult:
    """Outcome produced → a model snapshot including it is readable on rtim.models."""

    sent: int = 0
    examples_seen: int = 0  # training examples the outcomes caused
    learned: int = 0  # ... that a published snapshot includes
    latency_ms: dict[str, float] = field(default_factory=dict)
    to_training_ms: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "training_examples": self.examples_seen,
            "learned": self.learned,
            "not_learned": self.sent - self.learned,
            "outcome_to_training_example_ms": self.to_training_ms,
            **self.latency_ms,
        }


class _LearningFollower(threading.Thread):
    """Follows rtim.training (decision id → model, offset) and rtim.models (snapshots)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="rtim-bench-models", daemon=True)
        self.settings = settings
        training = settings.topic("rtim.training")
        models = settings.topic("rtim.models")
        self.training_topic, self.models_topic = training, models
        self.start_offsets = end_offsets(settings, [training, models])
        self.sent: dict[str, float] = {}  # decision id → outcome send time
        self.example_at: dict[str, float] = {}
        self.pending: dict[str, list[tuple[int, str]]] = {}  # model → [(offset, decision id)]
        self.learned_at: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        codec = Codec.from_settings(self.settings)
        consumer = Consumer(consumer_config(self.settings, None, **{"fetch.wait.max.ms": 5}))
        consumer.assign(self.start_offsets)
        try:
            while not self.stop_event.is_set():
                for message in consumer.consume(500, 0.01):
                    now = time.perf_counter()
                    if message.error() is not None:
                        continue
                    self._handle(codec, message, now)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            consumer.close()

    def _handle(self, codec: Codec, message: Message, now: float) -> None:
        _name, record = codec.decode(message.value() or b"")
        offset: int = message.offset() or 0
        with self.lock:
            if message.topic() == self.training_topic:
                decision_id = record["decision_id"]
                if decision_id in self.sent and decision_id not in self.example_at:
                    self.example_at[decision_id] = now
                    self.pending.setdefault(record["model_id"], []).append((offset, decision_id))
                return
            waiting = self.pending.get(record["model_id"])
            if not waiting:
                return
            covered = record["training_offset"]
            keep = []
            for offset, decision_id in waiting:
                if offset <= covered:
                    self.learned_at[decision_id] = now
                else:
                    keep.append((offset, decision_id))
            self.pending[record["model_id"]] = keep


def measure_outcome_to_model(
    settings: Settings,
    decisions: Sequence[dict[str, Any]],
    *,
    count: int,
    rate: float,
    seed: int = 13,
    drain_s: float = 5.0,
) -> OutcomeResult:
    """Send `count` outcomes (clicks and dismissals) for logged `decisions` with actions."""
    candidates = [d for d in decisions if d.get("actions")]
    result = OutcomeResult()
    if not candidates:
        return result
    rng = random.Random(seed)
    chosen = rng.sample(candidates, min(count, len(candidates)))
    follower = _LearningFollower(settings)
    follower.start()
    codec = Codec.from_settings(settings)
    topic = settings.topic("rtim.outcomes")
    warm = outcome_record(
        "bench-warmup-outcome",
        WARMUP_CUSTOMER,
        int(time.time() * 1000),
        channel="web",
        offer_id=chosen[0]["actions"][0]["offer_id"],
        kind="impression",
        decision_id=None,
    )
    producer = ready_producer(
        settings, topic, WARMUP_CUSTOMER.encode(), codec.encode("Outcome", warm, topic)
    )
    interval = 1.0 / rate
    try:
        t0 = time.perf_counter()
        for i, decision in enumerate(chosen):
            due = t0 + i * interval
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            action = decision["actions"][0]
            kind = "click" if rng.random() < 0.6 else "dismiss"
            record = outcome_record(
                f"out-{decision['decision_id']}",
                decision["customer_id"],
                int(time.time() * 1000),
                channel=decision["channel"],
                offer_id=action["offer_id"],
                kind=kind,
                decision_id=decision["decision_id"],
            )
            value = codec.encode("Outcome", record, topic=topic)
            with follower.lock:
                follower.sent[decision["decision_id"]] = time.perf_counter()
            producer.produce(topic, value, record["customer_id"].encode(), timestamp=record["ts"])
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with follower.lock:
                if len(follower.learned_at) >= len(follower.sent):
                    break
            time.sleep(0.02)
    finally:
        follower.stop_event.set()
        follower.join(10)
    if follower.error:
        raise BrokerError(f"following the models failed: {follower.error}")
    result.sent = len(chosen)
    result.examples_seen = len(follower.example_at)
    result.learned = len(follower.learned_at)
    sent = follower.sent
    result.latency_ms = percentiles([(t - sent[d]) * 1000 for d, t in follower.learned_at.items()])
    result.to_training_ms = percentiles(
        [(t - sent[d]) * 1000 for d, t in follower.example_at.items()]
    )
    return result
