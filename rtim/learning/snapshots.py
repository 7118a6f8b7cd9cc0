"""Model snapshots on `rtim.models`: encode, sign, verify, and read the topic to its end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from river.__version__ import __version__ as river_version

from rtim.core.learning import MODEL_FORMAT, ResponseModel, sign_state, verify_state
from rtim.errors import BrokerError
from rtim.kafka.config import consumer_config
from rtim.kafka.messages import consumed
from rtim.serde.codec import Codec
from rtim.settings import Settings

__all__ = ["MODELS_TOPIC", "load_snapshot", "model_key", "read_snapshots", "snapshot_record"]

MODELS_TOPIC = "rtim.models"


def model_key(settings: Settings) -> bytes:
    """The HMAC key of snapshots (empty when unset: integrity only, see RTIM_MODEL_KEY)."""
    return settings.model_key.get_secret_value().encode() if settings.model_key else b""


def snapshot_record(model: ResponseModel, version: int, ts: int, key: bytes) -> dict[str, Any]:
    """The ModelSnapshot record of a model's current state."""
    state = model.to_bytes()
    return {
        "model_id": model.model_id,
        "version": version,
        "ts": ts,
        "river_version": river_version,
        "format": MODEL_FORMAT,
        "state": state,
        "signature": sign_state(key, model.model_id, version, state),
        "examples": model.examples,
        "metrics": model.metrics(),
        "training_offset": model.training_offset,
    }


def load_snapshot(record: dict[str, Any], key: bytes) -> ResponseModel:
    """Verify and unpickle a snapshot (raises ModelIntegrityError on a bad signature)."""
    verify_state(key, record["model_id"], record["version"], record["state"], record["signature"])
    return ResponseModel.from_bytes(record["state"])


def read_snapshots(
    settings: Settings,
    codec: Codec,
    *,
    follow: bool = False,
    stop: threading.Event | None = None,
    timeout_s: float = 60,
) -> Iterator[dict[str, Any]]:
    """Every snapshot record on the topic, oldest first; with `follow`, keep waiting for more.

    Without `follow` it stops at the end offset taken when it starts. The learner publishes
    its last snapshot of a round in a batch of its own, so that offset is exact on brokers
    whose high watermark counts whole batches.
    """
    topic = settings.topic(MODELS_TOPIC)
    consumer = Consumer(consumer_config(settings, None, **{"fetch.wait.max.ms": 50}))
    try:
        tp = TopicPartition(topic, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
        consumer.assign([TopicPartition(topic, 0, 0)])
        last = -1
        deadline = time.monotonic() + timeout_s
        while (follow and not (stop and stop.is_set())) or (not follow and last < high - 1):
            if not follow and time.monotonic() > deadline:
                raise BrokerError(f"reading {topic} stalled at offset {last} of {high}")
            # what is there now, else wait for the first record only (not for 500 of them)
            for message in consumed(consumer.consume(500, 0) or consumer.consume(1, 0.2)):
                err = message.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        raise BrokerError(f"reading {topic}: {err}")
                    continue
                last = message.offset()
                value = message.value()
                if value is None:
                    continue
                _name, record = codec.decode(value, expected="ModelSnapshot")
                yield record
    finally:
        consumer.close()
