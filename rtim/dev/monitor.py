"""Watches what the engine says: the decision log and the DLQ, aggregated for progress/reports.

It reads like any analytics consumer would — a standalone consumer (no group, no commits) —
so watching never disturbs the workers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from rtim.errors import RtimError
from rtim.kafka.config import admin_config, consumer_config
from rtim.logs import get_logger
from rtim.serde.codec import Codec
from rtim.settings import Settings

__all__ = ["DecisionMonitor"]

log = get_logger("monitor")


class DecisionMonitor:
    """Aggregates rtim.decision-log and rtim.dlq in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.decisions = 0
        self.no_action = 0
        self.control = 0
        self.by_channel: Counter[str] = Counter()
        self.by_offer: Counter[str] = Counter()
        self.by_trigger: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()  # removed_by → candidates removed
        self.reasons: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()  # error_kind → count
        self.strategy_versions: Counter[str] = Counter()
        # learning: training examples per offer@channel, latest model metrics per model
        self.examples: Counter[str] = Counter()
        self.responses: Counter[str] = Counter()
        self.models: dict[str, dict[str, float]] = {}

    def start(self) -> None:
        """Start following both topics from their beginning."""
        self._thread = threading.Thread(target=self._run, name="rtim-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the aggregates."""
        with self._lock:
            return {
                "decisions": self.decisions,
                "no_action": self.no_action,
                "control_group": self.control,
                "decisions_by_channel": dict(self.by_channel),
                "actions_by_offer": dict(self.by_offer),
                "decisions_by_trigger": dict(self.by_trigger),
                "suppressed_by_reason": dict(self.suppressed.most_common()),
                "reasons": dict(self.reasons.most_common(20)),
                "dead_letters": dict(self.dead_letters),
                "learning_by_offer_channel": {
                    key: {
                        "examples": n,
                        "responses": self.responses[key],
                        "response_rate": round(self.responses[key] / n, 4),
                    }
                    for key, n in sorted(self.examples.items())
                },
                "models": {k: dict(v) for k, v in sorted(self.models.items())},
            }

    def _run(self) -> None:
        settings = self.settings
        codec = Codec.from_settings(settings)
        log_topic = settings.topic("rtim.decision-log")
        dlq_topic = settings.topic("rtim.dlq")
        topics = (
            log_topic,
            dlq_topic,
            settings.topic("rtim.training"),
            settings.topic("rtim.models"),
        )
        metadata = AdminClient(admin_config(settings)).list_topics(timeout=10)
        assignment = [
            TopicPartition(topic, partition, 0)
            for topic in topics
            if topic in metadata.topics
            for partition in metadata.topics[topic].partitions
        ]
        consumer = Consumer(consumer_config(settings, None, **{"fetch.wait.max.ms": 100}))
        consumer.assign(assignment)
        try:
            while not self._stop.is_set():
                for message in consumer.consume(1000, 0.2):
                    err = message.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("monitor consume error", error=str(err))
                        continue
                    try:
                        name, record = codec.decode(message.value() or b"")
                    except RtimError:
                        continue
                    with self._lock:
                        if name == "DecisionRecord":
                            self._add_decision(record)
                        elif name == "DeadLetter":
                            self.dead_letters[record.get("error_kind") or "unknown"] += 1
                        elif name == "TrainingExample":
                            key = f"{record['offer_id']}@{record['channel']}"
                            self.examples[key] += 1
                            self.responses[key] += int(record["reward"] > 0)
                        elif name == "ModelSnapshot":
                            self.models[record["model_id"]] = {
                                "version": float(record["version"]),
                                **{k: round(v, 4) for k, v in record["metrics"].items()},
                            }
        finally:
            consumer.close()

    def _add_decision(self, record: dict[str, Any]) -> None:
        decision = record["decision"]
        self.decisions += 1
        self.by_channel[decision["channel"]] += 1
        self.by_trigger[decision["trigger"].get("name") or decision["trigger"]["type"]] += 1
        self.strategy_versions[decision["strategy_version"]] += 1
        if decision["control_group"]:
            self.control += 1
        if not decision["actions"]:
            self.no_action += 1
        for action in decision["actions"]:
            self.by_offer[action["offer_id"]] += 1
        for reason in decision["reasons"]:
            self.reasons[reason] += 1
        for candidate in record["candidates"]:
            if candidate["removed_by"]:
                self.suppressed[candidate["removed_by"]] += 1

    def read_models(self) -> None:
        """Record the latest metrics of every model (reads rtim.models to its end once)."""
        from rtim.learning.snapshots import read_snapshots

        for record in read_snapshots(self.settings, Codec.from_settings(self.settings)):
            with self._lock:
                self.models[record["model_id"]] = {
                    "version": float(record["version"]),
                    **{k: round(v, 4) for k, v in record["metrics"].items()},
                }

    def wait_idle(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> None:
        """Wait until no new decision arrived for `quiet_s` (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        last = -1
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            with self._lock:
                seen = self.decisions + sum(self.dead_letters.values())
            if seen != last:
                last, quiet_since = seen, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            time.sleep(0.1)
