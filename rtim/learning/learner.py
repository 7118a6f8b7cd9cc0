"""The learner: consumes `rtim.training` (keyed by model id) and publishes model snapshots.

Exactly one learner owns each model, because a model's examples all live in one partition of
`rtim.training` and the learners share one consumer group. Protocol per round:

1. learn every new example (River `learn_one`, progressive AUC measured before learning);
   an example at or below the model's `training_offset` was learned before a crash: skipped;
2. at most every `RTIM_MODEL_PUBLISH_MS`, publish a snapshot of each changed model (with the
   training offset it reflects) to the compacted `rtim.models`, and wait for the acks;
3. then commit the training offsets.

A crash between 2 and 3 re-delivers examples that the snapshot already holds; the offset in the
snapshot makes them no-ops. A crash before 2 loses nothing: the examples are re-delivered.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from rtim.core.learning import ModelIntegrityError, ResponseModel, vectorize
from rtim.errors import BrokerError, RtimError
from rtim.kafka.config import consumer_config, producer_config
from rtim.kafka.messages import Consumed, consumed
from rtim.learning.snapshots import (
    MODELS_TOPIC,
    load_snapshot,
    model_key,
    read_snapshots,
    snapshot_record,
)
from rtim.logs import get_logger
from rtim.serde.codec import Codec
from rtim.settings import Settings

__all__ = ["Learner", "LearnerStats"]

log = get_logger("learner")

TRAINING_TOPIC = "rtim.training"


@dataclass
class LearnerStats:
    """Counters of a learner's life."""

    examples: int = 0
    skipped: int = 0
    bad: int = 0
    snapshots: int = 0
    models: int = 0
    last_publish_ms: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # example ts → snapshot acked


@dataclass
class _Owned:
    model: ResponseModel
    version: int
    dirty: bool = False
    oldest_unpublished_ts: int = 0  # event time of the first example not yet in a snapshot


class Learner:
    """Runs the learning loop until `stop()`; meant for its own thread or process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = Codec.from_settings(settings)
        self.stats = LearnerStats()
        self._key = model_key(settings)
        self._stop = threading.Event()
        self._models: dict[str, _Owned] = {}
        self._snapshots: dict[str, dict[str, object]] = {}  # latest record per model id
        self._errors: list[str] = []
        self._commit: dict[int, int] = {}
        self._topic = settings.topic(TRAINING_TOPIC)

    def stop(self) -> None:
        """Finish the current round, publish, commit and leave the group."""
        self._stop.set()

    def run(self) -> LearnerStats:
        """Consume, learn and publish until stopped."""
        settings = self.settings
        producer = Producer(producer_config(settings, **{"linger.ms": 5}))
        # not on the request path: a longer fetch wait costs ≤ 50 ms of outcome→model latency
        # and spares the broker 100 empty fetches a second
        consumer = Consumer(
            consumer_config(
                settings, settings.group(settings.learner_group_id), **{"fetch.wait.max.ms": 50}
            )
        )
        self._load_snapshots()
        consumer.subscribe([self._topic], on_revoke=self._on_revoke(producer))
        log.info("learner started", models_known=len(self._snapshots))
        last_publish = time.monotonic()
        try:
            while not self._stop.is_set():
                for message in consumed(consumer.consume(1000, 0) or consumer.consume(1, 0.05)):
                    self._learn(message)
                due = time.monotonic() - last_publish >= settings.model_publish_ms / 1000
                if due and any(o.dirty for o in self._models.values()):
                    self._publish(producer)
                    self._commit_offsets(consumer)
                    last_publish = time.monotonic()
        finally:
            try:
                if any(o.dirty for o in self._models.values()):
                    self._publish(producer)
                    self._commit_offsets(consumer)
            finally:
                consumer.close()
                producer.flush(10)
        log.info("learner stopped", examples=self.stats.examples, snapshots=self.stats.snapshots)
        return self.stats

    # --- learning ---------------------------------------------------------------------------
    def _learn(self, message: Consumed) -> None:
        err = message.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("training consume error", error=str(err))
            return
        partition, offset = message.partition(), message.offset()
        self._commit[partition] = offset + 1
        try:
            _name, example = self.codec.decode(message.value() or b"", expected="TrainingExample")
        except RtimError as exc:
            self.stats.bad += 1
            log.warning("bad training example skipped", offset=offset, error=str(exc))
            return
        owned = self._owned(example["model_id"])
        if offset <= owned.model.training_offset or owned.model.already_learned(
            example["example_id"]
        ):
            self.stats.skipped += 1  # redelivered, or re-emitted by a worker after a crash
            return
        x = vectorize(example["features"], example["channel"])
        owned.model.learn(x, float(example["reward"]))
        owned.model.training_offset = offset
        owned.model.remember(example["example_id"])
        if not owned.dirty:
            owned.dirty = True
            owned.oldest_unpublished_ts = int(time.time() * 1000)
        self.stats.examples += 1

    def _owned(self, model_id: str) -> _Owned:
        owned = self._models.get(model_id)
        if owned is not None:
            return owned
        record = self._snapshots.get(model_id)
        model: ResponseModel | None = None
        version = 0
        if record is not None:
            try:
                model = load_snapshot(dict(record), self._key)
                version = int(record["version"])  # type: ignore[call-overload]
            except ModelIntegrityError as exc:
                log.error("model snapshot rejected; starting the model afresh", error=str(exc))
        owned = _Owned(model or ResponseModel(model_id), version)
        self._models[model_id] = owned
        self.stats.models = len(self._models)
        return owned

    # --- publishing -------------------------------------------------------------------------
    def _publish(self, producer: Producer) -> None:
        started = time.perf_counter()
        topic = self.settings.topic(MODELS_TOPIC)
        now = int(time.time() * 1000)
        dirty = [o for o in self._models.values() if o.dirty]

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self._errors.append(str(err))

        # the last snapshot of a round goes in a batch of its own: see read_snapshots
        for i, owned in enumerate(dirty):
            if i == len(dirty) - 1 and i > 0:
                producer.flush(30)
            owned.version += 1
            record = snapshot_record(owned.model, owned.version, now, self._key)
            value = self.codec.encode("ModelSnapshot", record, topic=topic)
            producer.produce(topic, value, owned.model.model_id.encode(), on_delivery=on_delivery)
            self._snapshots[owned.model.model_id] = record
        if producer.flush(30) or self._errors:
            raise BrokerError(f"could not publish model snapshots: {self._errors[:1]}")
        acked = int(time.time() * 1000)
        for owned in dirty:
            owned.dirty = False
            self.stats.latencies_ms.append(acked - owned.oldest_unpublished_ts)
        del self.stats.latencies_ms[:-10_000]
        self.stats.snapshots += len(dirty)
        self.stats.last_publish_ms = (time.perf_counter() - started) * 1000

    def _commit_offsets(self, consumer: Consumer) -> None:
        if self._commit:
            offsets = [TopicPartition(self._topic, p, o) for p, o in self._commit.items()]
            consumer.commit(offsets=offsets, asynchronous=False)
            self._commit.clear()

    def _on_revoke(self, producer: Producer):  # type: ignore[no-untyped-def]
        def revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if any(o.dirty for o in self._models.values()):
                self._publish(producer)
                self._commit_offsets(consumer)
            # another learner may own these models next: forget them, reload on reassignment
            self._models.clear()
            self._load_snapshots()

        return revoke

    def _load_snapshots(self) -> None:
        for record in read_snapshots(self.settings, self.codec):
            self._snapshots[record["model_id"]] = record
