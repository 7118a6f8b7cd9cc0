"""Baselines measured in the same run, on the same broker and the same records as rtim.

- `raw_consume`: a confluent-kafka consumer (the worker's own consumer settings) reading the
  input topics without decoding anything — the ceiling for any Python consumer here;
- `faust_table`: the naive Faust agent with one RocksDB table update per event (DESIGN.md's
  recommended shape), in its own process and app id (`rtim.bench.faust_app`);
- `EchoRelay`: requests copied to a decision topic by a bare consumer → producer loop with
  the worker's poll-and-flush rhythm — the broker's share of request → decision latency.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from rtim.errors import BrokerError
from rtim.kafka.config import consumer_config, producer_config
from rtim.settings import Settings

__all__ = ["EchoRelay", "faust_table", "raw_consume", "window_rate"]


def window_rate(t_start: float, n_start: int, t_end: float, n_end: int) -> float:
    """Events per second between two (time, count) points; 0 when the window is empty."""
    return (n_end - n_start) / (t_end - t_start) if t_end > t_start and n_end > n_start else 0.0


def raw_consume(
    settings: Settings,
    topics: Sequence[str],
    expected: int,
    *,
    warmup_fraction: float = 0.05,
    timeout_s: float = 120,
) -> dict[str, Any]:
    """Read `expected` records from the start of the logical `topics`, bytes only."""
    from confluent_kafka.admin import AdminClient

    from rtim.kafka.config import admin_config

    physical = [settings.topic(t) for t in topics]
    metadata = AdminClient(admin_config(settings)).list_topics(timeout=10)
    assignment = [
        TopicPartition(t, p, 0) for t in physical for p in sorted(metadata.topics[t].partitions)
    ]
    consumer = Consumer(
        consumer_config(settings, None, **{"max.partition.fetch.bytes": 4 * 1024 * 1024})
    )
    consumer.assign(assignment)
    warm_at = max(1, int(expected * warmup_fraction))
    count, nbytes, warm_count = 0, 0, 0
    t_first = t_warm = t_last = 0.0
    t_call = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    try:
        while count < expected:
            if time.monotonic() > deadline:
                raise BrokerError(f"raw consume baseline: {count} of {expected} records read")
            messages = consumer.consume(10_000, 0.5)
            now = time.perf_counter()
            for message in messages:
                if message.error() is None:
                    count += 1
                    nbytes += len(message.value() or b"")
            if messages:
                if not t_first:
                    t_first = now
                if not t_warm and count >= warm_at:
                    t_warm, warm_count = now, count
                t_last = now
    finally:
        consumer.close()
    # a small run may arrive in one or two fetches: fall back to wider windows, never to 0
    rate = window_rate(t_warm, warm_count, t_last, count) or window_rate(t_call, 0, t_last, count)
    return {
        "events": count,
        "bytes": nbytes,
        "events_per_s": round(rate, 1),
        "events_per_s_incl_warmup": round(window_rate(t_call, 0, t_last, count), 1),
    }


def faust_table(
    settings: Settings,
    topics: Sequence[str],
    expected: int,
    work_dir: Path,
    *,
    budget_s: float,
    partitions: int = 6,
    warmup_fraction: float = 0.05,
    start_timeout_s: float = 60,
) -> dict[str, Any]:
    """Run the Faust baseline until it has counted `expected` events or `budget_s` passed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    out = work_dir / "progress.json"
    warm = max(1, int(expected * warmup_fraction))
    config = {
        "app_id": settings.topic("bench-faust-baseline"),
        "bootstrap": settings.broker,
        "datadir": str(work_dir / "faust-data"),
        "partitions": partitions,
        "topics": [settings.topic(t) for t in topics],
        "out": str(out),
        "warmup": warm,
        # as the worker's: its group join takes about half of it on the embedded broker
        "session_timeout_s": settings.session_timeout_ms / 1000,
    }
    config_path = work_dir / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = work_dir / "faust.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtim.bench.faust_app", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            state: dict[str, Any] = {}
            first_seen = 0.0
            while True:
                time.sleep(0.1)
                if out.exists():
                    try:
                        state = json.loads(out.read_text())
                    except ValueError:
                        continue
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-500:]
                    raise BrokerError(f"the Faust baseline exited ({proc.returncode}): {tail}")
                if not state.get("count"):
                    if time.monotonic() - started > start_timeout_s:
                        raise BrokerError("the Faust baseline consumed nothing within 60 s")
                    continue
                first_seen = first_seen or time.monotonic()
                if state["count"] >= expected or time.monotonic() - first_seen >= budget_s:
                    time.sleep(0.3)  # one more progress write
                    state = json.loads(out.read_text())
                    break
        finally:
            # its state is thrown away: no need to wait for a graceful Faust shutdown
            proc.terminate()
            try:
                proc.wait(1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    count = int(state["count"])
    t_warm = float(state.get("t_warm") or 0.0)
    return {
        "events": count,
        "of_available": expected,
        "budget_s": budget_s,
        "startup_s": round(first_seen - started, 1),
        "events_per_s": round(window_rate(t_warm, warm, state["t_last"], count), 1)
        if t_warm
        else round(window_rate(state["t_first"], 0, state["t_last"], count), 1),
        "events_per_s_incl_warmup": round(
            window_rate(state["t_first"], 0, state["t_last"], count), 1
        ),
    }


def _relay(
    settings: Settings, start: list[tuple[str, int, int]], out_topic: str, ready: Any, stop: Any
) -> None:
    from rtim.bench.loadgen import WARMUP_CUSTOMER
    from rtim.bench.workload import request_record
    from rtim.serde.codec import Codec

    consumer = Consumer(consumer_config(settings, None))
    producer = Producer(producer_config(settings, **{"linger.ms": 1}))  # as the worker's
    consumer.assign([TopicPartition(*tp) for tp in start])
    # past the idempotence handshake before anything is timed: one record like those it copies
    warm = request_record("echo-relay-warmup", WARMUP_CUSTOMER, int(time.time() * 1000), "web")
    value = Codec.from_settings(settings).encode("DecisionRequest", warm, out_topic)
    producer.produce(out_topic, value, WARMUP_CUSTOMER.encode())
    producer.flush(30)
    ready.set()
    try:
        while not stop.is_set():
            messages = consumer.consume(settings.batch_size, 0)
            if not messages:
                messages = consumer.consume(1, 0.1)
                if messages and settings.batch_size > 1:
                    more = consumer.consume(
                        settings.batch_size - 1, settings.batch_timeout_ms / 1000
                    )
                    messages.extend(more)
            sent = 0
            for message in messages:
                if message.error() is None:
                    producer.produce(out_topic, message.value(), message.key())
                    sent += 1
            if sent:
                producer.flush(30)
    finally:
        consumer.close()
        producer.flush(10)


class EchoRelay:
    """Copies new records of a request topic to an answer topic, in a child process."""

    def __init__(self, settings: Settings, request_topic: str, answer_topic: str) -> None:
        from rtim.bench.loadgen import end_offsets

        ctx = mp.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        start = [
            (tp.topic, tp.partition, tp.offset)
            for tp in end_offsets(settings, [settings.topic(request_topic)])
        ]
        self._proc = ctx.Process(
            target=_relay,
            args=(settings, start, settings.topic(answer_topic), self._ready, self._stop),
            name="rtim-bench-echo",
            daemon=True,
        )

    def __enter__(self) -> EchoRelay:
        self._proc.start()
        if not self._ready.wait(60):
            self._proc.kill()
            raise BrokerError("the echo relay did not start in 60 s")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
