"""The simulator's Kafka shell: produce the population's events, play the channel adapters.

`SimDriver` runs a `Simulation` against a broker like a real client would — Avro records on
the public topics, keyed by customer id, Kafka timestamp = event time — paced at `rate`
events per wall-clock second, on a simulated clock that runs `speedup` times faster than the
wall clock. Its channel adapters consume every `rtim.decisions.<channel>` topic, play each
decision out with the hidden response model (`rtim.sim.responses.respond`) and produce the
outcomes to `rtim.outcomes` when the simulated clock reaches them. On the way it measures what
a product owner asks: request → decision latency, decisions, outcomes, reward of policy vs
control decisions with the lift's 95 % interval, a learning curve, and the rule violations an
independent audit (`rtim.sim.audit`) finds.

`preload` is the bulk path for benchmarks: n events as fast as the producer takes them.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from rtim.core.features import CHANNELS
from rtim.core.strategy import Strategy, load_strategy
from rtim.errors import BrokerError, ConfigError, DecodeError, TopicError
from rtim.kafka.admin import admin_client, list_topics
from rtim.kafka.config import consumer_config, producer_config
from rtim.logs import get_logger
from rtim.serde.codec import Codec
from rtim.settings import Settings
from rtim.sim import (
    DEFAULT_CUSTOMERS,
    DEFAULT_DRAIN_S,
    DEFAULT_DURATION_S,
    DEFAULT_RATE,
    DEFAULT_SEED,
    DEFAULT_SPEEDUP,
)
from rtim.sim.audit import Auditor, RewardTracker
from rtim.sim.population import Population, SimRecord, Simulation
from rtim.sim.responses import POSITIVE, best_offer, offer_catalog, respond, response_probability

__all__ = [
    "DECISION_TOPICS",
    "DEFAULT_CUSTOMERS",
    "DEFAULT_DURATION_S",
    "DEFAULT_RATE",
    "DEFAULT_SEED",
    "DEFAULT_SPEEDUP",
    "INPUT_TOPICS",
    "SimDriver",
    "SimReport",
    "check_topics",
    "default_start_ms",
    "preload",
]

log = get_logger("sim")

INPUT_TOPICS: Final = (
    "rtim.events.clickstream",
    "rtim.events.transactions",
    "rtim.events.complaints",
    "rtim.events.profile",
    "rtim.requests",
)
OUTCOME_TOPIC: Final = "rtim.outcomes"
DECISION_TOPICS: Final = tuple(f"rtim.decisions.{channel}" for channel in CHANNELS)

_TICK_S: Final = 0.25
_IDLE_S: Final = 2.0  # in the drain: no decision for this long = nobody is answering
_MARGIN_S: Final = 30.0  # wall seconds of simulated time kept between the run's end and now
_MAX_LATENCY_SAMPLES: Final = 200_000
_MAX_PENDING_REQUESTS: Final = 500_000
_FLUSH_S: Final = 30.0


def default_start_ms(
    duration_s: float, speedup: float, drain_s: float = DEFAULT_DRAIN_S, now_ms: int | None = None
) -> int:
    """A start such that the whole run (and its drain) ends before the wall clock's now.

    The worker rejects events too far in the future (RTIM_MAX_FUTURE_MS), so simulated time
    must not overtake the wall clock: start = now - (duration + drain + margin) * speedup.
    """
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return now - int((duration_s + drain_s + _MARGIN_S) * speedup * 1000)


def check_topics(settings: Settings, logical: tuple[str, ...] | None = None) -> dict[str, int]:
    """Physical topic → partitions for the topics the simulator uses; TopicError if any is missing.

    Lists the whole cluster's topics (never one named topic: that would create it on Tansu).
    """
    wanted = logical if logical is not None else (*INPUT_TOPICS, OUTCOME_TOPIC, *DECISION_TOPICS)
    states = list_topics(admin_client(settings))
    missing = [settings.topic(t) for t in wanted if settings.topic(t) not in states]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise TopicError(f"topic {shown} does not exist on the broker (run `rtim topics apply`)")
    return {settings.topic(t): states[settings.topic(t)].partitions for t in wanted}


@dataclass
class SimReport:
    """What a simulation run did and measured (`to_dict()` for JSON)."""

    seed: int
    customers: int
    rate: float
    speedup: float
    duration_s: float
    start_ms: int
    end_ms: int  # simulated time reached
    run_tag: str
    strategy_version: str
    wall_s: float = 0.0
    stopped_early: bool = False
    onboarding_events: int = 0
    events_sent: dict[str, int] = field(default_factory=dict)  # by kind, onboarding included
    events_total: int = 0
    events_per_s: float = 0.0  # behavioural events per wall second of the paced run
    requests: int = 0
    requests_answered: int = 0
    requests_unanswered: int = 0
    decisions: int = 0
    decisions_by_channel: dict[str, int] = field(default_factory=dict)
    decisions_by_offer: dict[str, int] = field(default_factory=dict)
    decisions_duplicate: int = 0
    decisions_foreign: int = 0  # not caused by this run's events (other runs, other clients)
    no_action: int = 0
    control_group: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # the 20 most frequent
    outcomes_sent: int = 0
    outcomes_by_type: dict[str, int] = field(default_factory=dict)
    outcomes_pending: int = 0  # scheduled after the end of the run: not sent
    latency_ms: dict[str, float | int | None] = field(default_factory=dict)
    rewards: dict[str, Any] = field(default_factory=dict)
    learning_curve: list[dict[str, Any]] = field(default_factory=list)
    oracle_rate: float | None = None
    violations: dict[str, Any] = field(default_factory=dict)
    decode_errors: int = 0
    delivery_errors: int = 0
    causal_waits: int = 0  # records held until the customer's earlier ones were acknowledged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(sorted_values[k], 3)


def _load_strategy(strategy: Strategy | str | Path | None, settings: Settings) -> Strategy:
    if isinstance(strategy, Strategy):
        return strategy
    return load_strategy(strategy if strategy is not None else settings.strategy)


class _Sender:
    """Encode and produce SimRecords (one thread: the codec is not thread-safe).

    `causal`: a record of a customer waits until that customer's records on other topics are
    acknowledged. Kafka orders records only within a partition of one topic; simulated time
    runs hundreds of times faster than the wall clock, so a complaint and the web visit that
    follows it a simulated minute later would otherwise be in flight together, in an order no
    consumer can know. Real systems minutes apart never race like that; causal sending keeps
    the simulation honest about it (see docs/reliability.md, "Ordering across topics").
    """

    def __init__(self, settings: Settings, producer: Producer, *, causal: bool = False) -> None:
        self.codec = Codec.from_settings(settings)
        self.producer = producer
        self.physical = {t: settings.topic(t) for t in (*INPUT_TOPICS, OUTCOME_TOPIC)}
        self.failures: list[str] = []
        self.ends: dict[tuple[str, int], int] = {}  # (topic, partition) → end offset delivered
        self.causal = causal
        self.waits = 0  # times a record waited for an earlier one on another topic
        self._unacked: dict[str, str] = {}  # customer → topic of records maybe still in flight

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failures.append(error.str())
            return
        key = (message.topic(), message.partition())
        if message.offset() + 1 > self.ends.get(key, 0):
            self.ends[key] = message.offset() + 1

    def send(
        self,
        topic: str,
        key: str,
        schema: str,
        record: dict[str, Any],
        on_send: Callable[[], None] | None = None,
    ) -> None:
        """Produce one record; `on_send` runs just before it is handed to the producer."""
        physical = self.physical[topic]
        value = self.codec.encode(schema, record, topic=physical)
        if self.causal:
            unacked = self._unacked
            if unacked and not len(self.producer):
                unacked.clear()  # everything sent so far is acknowledged
            previous = unacked.get(key)
            if previous is not None and previous != topic:
                if len(self.producer):  # something may still be in flight: wait for the acks
                    self.waits += 1
                    self.producer.flush()
                unacked.clear()
            unacked[key] = topic
        if on_send is not None:
            on_send()
        produce = self.producer.produce
        while True:
            try:
                produce(physical, value=value, key=key.encode(), timestamp=record["ts"],
                        on_delivery=self._delivered)  # fmt: skip
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.05)


class SimDriver:
    """Runs a simulation against the broker; see the module docstring.

    `rate`: behavioural events per wall second; `speedup`: simulated seconds per wall second;
    `start_ms`: simulated start (default: `default_start_ms`); `strategy`: a Strategy or a
    path (default: settings.strategy), used for offer values and by the audit. `drain_s`:
    longest wait after the run for answers and outcomes; `buckets`: points of the learning
    curve; `wave_s`: how often the simulated upstream sends what happened since its last wave.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        customers: int = DEFAULT_CUSTOMERS,
        rate: float = DEFAULT_RATE,
        seed: int = DEFAULT_SEED,
        duration_s: float = DEFAULT_DURATION_S,
        speedup: float = DEFAULT_SPEEDUP,
        start_ms: int | None = None,
        strategy: Strategy | str | Path | None = None,
        drain_s: float = DEFAULT_DRAIN_S,
        buckets: int = 20,
        wait_for_workers: bool = False,
        wave_s: float = _TICK_S,
    ) -> None:
        if customers < 1:
            raise ConfigError(f"customers must be at least 1, got {customers}")
        if not rate > 0 or not speedup > 0 or not duration_s > 0:
            raise ConfigError("rate, speedup and duration must be positive")
        if drain_s < 0:
            raise ConfigError(f"drain must be >= 0 s, got {drain_s}")
        if not wave_s > 0:
            raise ConfigError(f"the wave interval must be positive, got {wave_s} s")
        self.settings = settings
        self.customers = customers
        self.rate = float(rate)
        self.seed = seed
        self.duration_s = float(duration_s)
        self.speedup = float(speedup)
        self.drain_s = float(drain_s)
        # records are sent in waves of this interval: fewer, larger produce batches
        self.wave_s = float(wave_s)
        # wait (≤ 120 s) until the customer workers' group has committed the onboarding events
        # before the paced run starts, so its latencies are not measured behind that burst
        self.wait_for_workers = wait_for_workers
        self.start_ms = (
            start_ms if start_ms is not None else default_start_ms(duration_s, speedup, drain_s)
        )
        self.end_ms = self.start_ms + int(self.duration_s * self.speedup * 1000)
        latest = self.start_ms + int((self.duration_s + self.drain_s) * self.speedup * 1000)
        now = time.time_ns() // 1_000_000
        if latest > now + settings.max_future_ms:
            raise ConfigError(
                "the simulated clock would run more than RTIM_MAX_FUTURE_MS ahead of the wall "
                "clock: choose an earlier --start, or a smaller speedup or duration"
            )
        self.strategy = _load_strategy(strategy, settings)
        self.catalog = offer_catalog(self.strategy)
        self._by_channel = {
            ch: {o.id: self.catalog[o.id] for o in self.strategy.offers_for_channel(ch)}
            for ch in CHANNELS
        }
        self.population = Population(seed, customers)
        self.simulation = Simulation(
            self.population, start_ms=self.start_ms, events_per_sim_s=self.rate / self.speedup,
            seed=seed,
        )  # fmt: skip
        self.tag = self.simulation.tag
        self.auditor = Auditor(self.strategy)
        bucket_ms = max(1, (self.end_ms - self.start_ms) // max(1, buckets))
        self.rewards = RewardTracker(self.start_ms, bucket_ms, buckets)
        # shared state (consumer thread ↔ main thread), under _lock
        self._lock = threading.Lock()
        self._outcomes: list[tuple[int, int, dict[str, Any]]] = []  # heap: (due ts, seq, record)
        self._outcome_seq = 0
        self._pending_requests: dict[str, float] = {}
        self._latencies: list[float] = []
        self._latency_count = 0
        self._latency_rng = random.Random(seed)
        self._seen_decisions: set[str] = set()
        self._last_decision_wall = 0.0
        self._oracle_sum = 0.0
        self._oracle_n = 0
        self._decode_errors = 0
        self._consumer_error: str | None = None
        self._events: Counter[str] = Counter()
        self._onboarding = 0
        self._requests = 0
        self._answered = 0
        self._decisions = 0
        self._duplicates = 0
        self._foreign = 0
        self._no_action = 0
        self._control = 0
        self._by_channel_count: Counter[str] = Counter()
        self._by_offer: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._outcomes_sent: Counter[str] = Counter()
        self._phase = "created"
        self._t0 = 0.0
        self._sim_now = self.start_ms
        self._wall_s = 0.0
        self._stopped_early = False
        self._delivery_errors = 0
        self._causal_waits = 0
        self._sent_ts = 0  # the latest event time sent so far

    # --- public -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> SimReport:
        """Run the simulation (blocking) and return its report. `stop` ends it early, cleanly."""
        stop = stop if stop is not None else threading.Event()
        partitions = check_topics(self.settings)
        producer = Producer(producer_config(self.settings))
        sender = _Sender(self.settings, producer, causal=True)
        consumer = Consumer(consumer_config(self.settings, None, log_level=0))
        consumer_stop = threading.Event()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._adapters, args=(consumer, partitions, ready, consumer_stop),
            name="rtim-sim-adapters", daemon=True,
        )  # fmt: skip
        thread.start()
        try:
            if not ready.wait(30):
                raise BrokerError("the channel adapters could not subscribe to the decision topics")
            if self._consumer_error:
                raise BrokerError(self._consumer_error)
            self._phase = "onboarding"
            t_onboard = time.monotonic()
            self._send_events(sender, self.simulation.events_until(self.start_ms), onboarding=True)
            producer.poll(0)
            if self.wait_for_workers:
                producer.flush(_FLUSH_S)
                self._wait_for_workers(sender.ends, stop)
            self._phase = "running"
            log.info("simulation started", customers=self.customers, rate=self.rate,
                     speedup=self.speedup, duration_s=self.duration_s, tag=self.tag,
                     onboarding=self._onboarding,
                     onboarding_s=round(time.monotonic() - t_onboard, 2))  # fmt: skip
            self._t0 = time.monotonic()
            self._loop(sender, producer, stop)
            self._phase = "draining"
            self._drain(sender, producer, stop)
        finally:
            self._phase = "flushing"
            remaining = producer.flush(_FLUSH_S)
            consumer_stop.set()
            thread.join(10)
            consumer.close()
        self._wall_s = time.monotonic() - self._t0 if self._t0 else 0.0
        self._delivery_errors = len(sender.failures) + remaining
        self._causal_waits = sender.waits
        self._phase = "done"
        if sender.failures:
            log.warning("deliveries failed", count=len(sender.failures), first=sender.failures[0])
        return self.report()

    def _wait_for_workers(self, ends: dict[tuple[str, int], int], stop: threading.Event) -> None:
        group = self.settings.group(self.settings.group_id)
        consumer = Consumer(consumer_config(self.settings, group))
        deadline = time.monotonic() + 120
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                committed = consumer.committed([TopicPartition(t, p) for t, p in ends], 10)
                if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed):
                    return
                stop.wait(0.2)
            log.warning("the workers did not catch up with the onboarding events in time")
        finally:
            consumer.close()

    def latency_samples(self) -> list[float]:
        """Request → decision latencies (ms) measured so far (a reservoir sample)."""
        with self._lock:
            return list(self._latencies)

    def snapshot(self) -> dict[str, Any]:
        """Live progress, safe to call from any thread while `run` is going."""
        with self._lock:
            elapsed = time.monotonic() - self._t0 if self._t0 else 0.0
            behaviour = sum(self._events.values()) - self._onboarding
            lat = sorted(self._latencies)
            rewards = self.rewards.totals
            pn, pr = rewards["policy"][0], rewards["policy"][1]
            cn, cr = rewards["control"][0], rewards["control"][1]
            return {
                "phase": self._phase,
                "elapsed_s": round(elapsed, 2),
                "sim_ms": self._sim_now,
                "events_sent": sum(self._events.values()),
                "events_by_kind": dict(self._events),
                "events_per_s": round(behaviour / elapsed, 1) if elapsed > 0 else 0.0,
                "requests": self._requests,
                "unanswered_requests": len(self._pending_requests),
                "decisions": self._decisions,
                "decisions_by_channel": dict(self._by_channel_count),
                "no_action": self._no_action,
                "outcomes_sent": sum(self._outcomes_sent.values()),
                "outcomes_by_type": dict(self._outcomes_sent),
                "outcomes_pending": len(self._outcomes),
                "latency_p50_ms": _percentile(lat, 0.5),
                "latency_p99_ms": _percentile(lat, 0.99),
                "policy_reward_rate": round(pr / pn, 6) if pn else None,
                "control_reward_rate": round(cr / cn, 6) if cn else None,
                "lift": round(pr / pn - cr / cn, 6) if pn and cn else None,
                "policy_value": round(self.rewards.value["policy"][0] / pn, 4) if pn else None,
                "control_value": round(self.rewards.value["control"][0] / cn, 4) if cn else None,
                "violations": sum(self.auditor.counts.values()),
            }

    def report(self) -> SimReport:
        """The report of what happened so far (final after `run`)."""
        with self._lock:
            lat = sorted(self._latencies)
            behaviour = sum(self._events.values()) - self._onboarding
            active_s = min(self._wall_s, self.duration_s) if self._wall_s else 0.0
            rewards = self.rewards.summary()
            curve = rewards.pop("series")
            return SimReport(
                seed=self.seed,
                customers=self.customers,
                rate=self.rate,
                speedup=self.speedup,
                duration_s=self.duration_s,
                start_ms=self.start_ms,
                end_ms=self._sim_now,
                run_tag=self.tag,
                strategy_version=self.strategy.version,
                wall_s=round(self._wall_s, 3),
                stopped_early=self._stopped_early,
                onboarding_events=self._onboarding,
                events_sent=dict(self._events),
                events_total=sum(self._events.values()),
                events_per_s=round(behaviour / active_s, 1) if active_s else 0.0,
                requests=self._requests,
                requests_answered=self._answered,
                requests_unanswered=len(self._pending_requests),
                decisions=self._decisions,
                decisions_by_channel=dict(self._by_channel_count),
                decisions_by_offer=dict(self._by_offer.most_common()),
                decisions_duplicate=self._duplicates,
                decisions_foreign=self._foreign,
                no_action=self._no_action,
                control_group=self._control,
                reasons=dict(self._reasons.most_common(20)),
                outcomes_sent=sum(self._outcomes_sent.values()),
                outcomes_by_type=dict(self._outcomes_sent),
                outcomes_pending=len(self._outcomes),
                latency_ms={
                    "samples": self._latency_count,
                    "p50": _percentile(lat, 0.5),
                    "p90": _percentile(lat, 0.9),
                    "p99": _percentile(lat, 0.99),
                    "max": round(lat[-1], 3) if lat else None,
                    "mean": round(sum(lat) / len(lat), 3) if lat else None,
                },
                rewards=rewards,
                learning_curve=curve,
                oracle_rate=round(self._oracle_sum / self._oracle_n, 6) if self._oracle_n else None,
                violations=self.auditor.summary(),
                decode_errors=self._decode_errors,
                delivery_errors=self._delivery_errors,
                causal_waits=self._causal_waits,
            )

    # --- the producing side (main thread) -------------------------------------------------------
    def _sim_clock(self) -> int:
        return self.start_ms + int((time.monotonic() - self._t0) * self.speedup * 1000)

    def _loop(self, sender: _Sender, producer: Producer, stop: threading.Event) -> None:
        while True:
            tick = time.monotonic()
            if stop.is_set():
                self._stopped_early = True
                return
            if tick - self._t0 >= self.duration_s:
                break
            sim_now = min(self._sim_clock(), self.end_ms)
            self._send_in_time_order(sender, self.simulation.events_until(sim_now), sim_now)
            producer.poll(0)
            stop.wait(max(0.0, self.wave_s - (time.monotonic() - tick)))
        # the last events exactly up to the end, so a full run always covers the same events
        self._send_in_time_order(sender, self.simulation.events_until(self.end_ms), self.end_ms)

    def _drain(self, sender: _Sender, producer: Producer, stop: threading.Event) -> None:
        """Keep the adapters going until answers and due outcomes are in, at most drain_s."""
        deadline = time.monotonic() + self.drain_s
        sim_deadline = self.start_ms + int((deadline - self._t0) * self.speedup * 1000)
        with self._lock:
            self._last_decision_wall = max(self._last_decision_wall, time.monotonic())
        while not stop.is_set():
            now = time.monotonic()
            sim_now = self._sim_clock()
            self._send_outcomes(sender, sim_now)
            producer.poll(0)
            with self._lock:
                idle = now - self._last_decision_wall > _IDLE_S
                answered = not self._pending_requests or idle
                outcomes_done = not self._outcomes or self._outcomes[0][0] > sim_deadline
            if (answered and outcomes_done) or now >= deadline:
                return
            stop.wait(_TICK_S * 5)

    def _send_events(
        self, sender: _Sender, records: list[SimRecord], *, onboarding: bool = False
    ) -> None:
        if not records:
            return
        # the audit and the request clock learn of each record before it is sent: an answer
        # may come back before this loop ends (a causal send waits for acknowledgements)
        with self._lock:
            observe = self.auditor.observe
            for rec in records:
                observe(rec.schema, rec.record)
            self._events.update(rec.kind for rec in records)
            if onboarding:
                self._onboarding += len(records)
            self._sim_now = max(self._sim_now, records[-1].record["ts"])
            self._sent_ts = max(self._sent_ts, records[-1].record["ts"])
        send = sender.send
        for rec in records:
            if rec.schema == "DecisionRequest":
                send(rec.topic, rec.key, rec.schema, rec.record,
                     partial(self._request_sent, rec.record["request_id"]))  # fmt: skip
            else:
                send(rec.topic, rec.key, rec.schema, rec.record)

    def _request_sent(self, request_id: str) -> None:
        with self._lock:
            self._requests += 1
            pending = self._pending_requests
            pending[request_id] = time.monotonic()
            if len(pending) > _MAX_PENDING_REQUESTS:  # nobody answers: forget the oldest half
                for rid in list(pending)[: len(pending) // 2]:
                    del pending[rid]

    def _pop_due(self, sim_now: int) -> list[dict[str, Any]]:
        due: list[dict[str, Any]] = []
        with self._lock:
            heap = self._outcomes
            while heap and heap[0][0] <= sim_now:
                due.append(heapq.heappop(heap)[2])
            self._sim_now = max(self._sim_now, sim_now)
        return due

    def _send_in_time_order(self, sender: _Sender, records: list[SimRecord], sim_now: int) -> None:
        """Produce events and due outcomes merged by timestamp, as a well-behaved upstream
        would: an outcome is never sent after an event that happened later."""
        due = self._pop_due(sim_now)
        merged: list[tuple[int, int, SimRecord | dict[str, Any]]] = [
            (rec.record["ts"], 1, rec) for rec in records
        ]
        merged.extend((o["ts"], 0, o) for o in due)
        merged.sort(key=lambda item: (item[0], item[1]))
        self._send_wave(sender, [item for _ts, _rank, item in merged])

    def _send_wave(self, sender: _Sender, wave: list[SimRecord | dict[str, Any]]) -> None:
        run: list[Any] = []
        for item in wave:
            if run and isinstance(item, SimRecord) != isinstance(run[0], SimRecord):
                self._send_run(sender, run)
                run = []
            run.append(item)
        self._send_run(sender, run)

    def _send_run(self, sender: _Sender, run: list[Any]) -> None:
        if not run:
            return
        if isinstance(run[0], SimRecord):
            self._send_events(sender, run)
        else:
            self._send_outcome_records(sender, run)

    def _send_outcomes(self, sender: _Sender, sim_now: int) -> None:
        self._send_outcome_records(sender, self._pop_due(sim_now))

    def _send_outcome_records(self, sender: _Sender, due: list[dict[str, Any]]) -> None:
        if not due:
            return
        with self._lock:  # observed first, like events (see _send_events)
            for record in due:
                # an outcome reported after later events were sent counts from then on
                self.auditor.observe_outcome(record, reported_ts=self._sent_ts)
                self._outcomes_sent[record["type"]] += 1
                self._sent_ts = max(self._sent_ts, record["ts"])
        for record in due:
            sender.send(OUTCOME_TOPIC, record["customer_id"], "Outcome", record)

    # --- the channel adapters (consumer thread) -----------------------------------------------
    def _adapters(
        self,
        consumer: Consumer,
        partitions: dict[str, int],
        ready: threading.Event,
        stop: threading.Event,
    ) -> None:
        try:
            assignment = []
            for logical in DECISION_TOPICS:
                physical = self.settings.topic(logical)
                for p in range(partitions[physical]):
                    tp = TopicPartition(physical, p)
                    # the end as the broker reports it: a lower bound on some brokers (Tansu),
                    # so a few older decisions may come back; they are not this run's (tag)
                    _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                    assignment.append(TopicPartition(physical, p, high))
            consumer.assign(assignment)
        except Exception as exc:
            self._consumer_error = f"cannot read the decision topics: {exc}"
            ready.set()
            return
        ready.set()
        codec = Codec.from_settings(self.settings)
        while not stop.is_set():
            # consume(n, t) waits for n records or t seconds: take what is there, else wait
            # for the first record only, so latency is not measured in poll timeouts
            messages = consumer.consume(num_messages=1000, timeout=0) or consumer.consume(
                num_messages=1, timeout=0.1
            )
            received = time.monotonic()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("decision topic error", error=error.str())
                    continue
                try:
                    _name, decision = codec.decode(message.value() or b"", expected="Decision")
                except DecodeError as exc:
                    with self._lock:
                        self._decode_errors += 1
                    log.warning("undecodable decision", error=str(exc), topic=message.topic())
                    continue
                self._on_decision(decision, received)

    def _own(self, decision: dict[str, Any]) -> bool:
        prefix = self.tag + "."
        trigger = decision.get("trigger") or {}
        return str(trigger.get("id", "")).startswith(prefix) or str(
            decision.get("request_id") or ""
        ).startswith(prefix)

    def _on_decision(self, decision: dict[str, Any], received: float) -> None:
        decision_id = decision["decision_id"]
        customer = self.population.get(decision["customer_id"])
        with self._lock:
            if decision_id in self._seen_decisions:
                self._duplicates += 1
                return
            self._seen_decisions.add(decision_id)
            if customer is None or not self._own(decision):
                self._foreign += 1
                return
            self._decisions += 1
            self._last_decision_wall = received
            channel = decision["channel"]
            self._by_channel_count[channel] += 1
            self._reasons.update(decision.get("reasons") or ())
            request_id = decision.get("request_id")
            sent_at = self._pending_requests.pop(request_id, None) if request_id else None
            if sent_at is not None:
                self._answered += 1
                self._latency_sample((received - sent_at) * 1000.0)
            actions = decision.get("actions") or []
            if not actions:
                self._no_action += 1
                return
            control = bool(decision.get("control_group"))
            self._control += control
            for action in actions:
                self._by_offer[action["offer_id"]] += 1
            ts = decision["ts"]
            context = self.auditor.context_at(customer.customer_id, ts)
            self.auditor.check(decision)
            outcomes = respond(decision, customer, self.seed, offers=self.catalog, context=context)
            reward = int(any(o["type"] in POSITIVE for _d, o in outcomes))
            responded = {o["offer_id"] for _d, o in outcomes if o["type"] in POSITIVE}
            cost = (
                self.strategy.channels[channel].cost if channel in self.strategy.channels else 0.0
            )
            value, expected_value = -cost, -cost
            miss = 1.0
            for action in actions:
                info = self.catalog.get(action["offer_id"])
                offer_value = info[1] if info else 0.0
                p = response_probability(
                    customer.traits, action["offer_id"], action["category"], channel, context,
                    value=info[1] if info else None,
                )  # fmt: skip
                miss *= 1.0 - p
                expected_value += p * offer_value
                if action["offer_id"] in responded:
                    value += offer_value
            self.rewards.add(
                ts, control, reward, 1.0 - miss, value=value, expected_value=expected_value
            )
            if not control:
                best = best_offer(customer.traits, self._by_channel.get(channel, {}), channel,
                                  context)  # fmt: skip
                if best is not None:
                    self._oracle_sum += best[1]
                    self._oracle_n += 1
            for _delay, record in outcomes:
                self._outcome_seq += 1
                heapq.heappush(self._outcomes, (record["ts"], self._outcome_seq, record))

    def _latency_sample(self, ms: float) -> None:
        self._latency_count += 1
        if len(self._latencies) < _MAX_LATENCY_SAMPLES:
            self._latencies.append(ms)
            return
        j = self._latency_rng.randrange(self._latency_count)  # reservoir sampling
        if j < _MAX_LATENCY_SAMPLES:
            self._latencies[j] = ms


def preload(
    settings: Settings,
    n_events: int,
    customers: int,
    seed: int = DEFAULT_SEED,
    *,
    start_ms: int | None = None,
    events_per_sim_s: float = 1000.0,
) -> dict[str, int]:
    """Produce `n_events` simulated events as fast as possible (no pacing, no adapters).

    The joining events of the customers come first (they count towards `n_events`), then
    behaviour at `events_per_sim_s` events per simulated second, ending before the wall
    clock's now. Returns the number of records sent by kind. For benchmarks.
    """
    if n_events < 0 or customers < 1:
        raise ConfigError("preload needs n_events >= 0 and at least one customer")
    check_topics(settings, INPUT_TOPICS)
    if start_ms is None:
        start_ms = time.time_ns() // 1_000_000 - int(n_events / events_per_sim_s * 1000) - 3_600_000
    simulation = Simulation(Population(seed, customers), start_ms=start_ms,
                            events_per_sim_s=events_per_sim_s, seed=seed)  # fmt: skip
    producer = Producer(producer_config(settings, **{"linger.ms": 20}))
    sender = _Sender(settings, producer)
    counts: Counter[str] = Counter()
    sent = 0
    try:
        while sent < n_events:
            chunk = simulation.take(min(50_000, n_events - sent), step_ms=10_000)
            if not chunk:
                break
            chunk = chunk[: n_events - sent]
            send = sender.send
            for rec in chunk:
                send(rec.topic, rec.key, rec.schema, rec.record)
            producer.poll(0)
            counts.update(rec.kind for rec in chunk)
            sent += len(chunk)
    finally:
        remaining = producer.flush(_FLUSH_S * 4)
    if remaining or sender.failures:
        first = sender.failures[0] if sender.failures else "not delivered in time"
        raise BrokerError(f"{remaining + len(sender.failures)} of {sent} records failed: {first}")
    return dict(counts)
