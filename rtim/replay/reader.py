"""Read a time range of recorded topics without disturbing anyone.

A standalone consumer (no group, nothing committed) assigns every partition itself, starts at
the offset the broker gives for the start time and filters by record timestamp — some brokers
answer `offsets_for_times` with a lower bound only, so the filter is what makes the range exact.
A partition is done when the consumer reports its end, or when its records are more than
`grace_ms` past the range (a live topic never ends).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from rtim.errors import BrokerError, ConfigError, TopicError
from rtim.kafka.config import admin_config, consumer_config
from rtim.kafka.messages import consumed
from rtim.settings import Settings

__all__ = ["RecordedMessage", "read_range", "time_range"]


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One record as it was on the broker."""

    topic: str  # logical name
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def time_range(start: str, end: str | None) -> tuple[int, int | None]:
    """`--from`/`--to` values (ISO-8601 or epoch ms) as epoch ms; ConfigError if unreadable."""
    from rtim.serde.jsonio import parse_timestamp

    def ms(value: str) -> int:
        return parse_timestamp(int(value) if value.strip().lstrip("-").isdigit() else value)

    try:
        return ms(start), (ms(end) if end is not None else None)
    except Exception as exc:
        raise ConfigError(f"--from/--to: {exc}") from None


def read_range(
    settings: Settings,
    topics: Sequence[str],
    start_ms: int = 0,
    end_ms: int | None = None,
    *,
    grace_ms: int = 60_000,
    timeout_s: float = 600,
) -> Iterator[RecordedMessage]:
    """Every record of `topics` (logical names) with start_ms ≤ timestamp < end_ms."""
    physical = {settings.topic(t): t for t in topics}
    metadata = AdminClient(admin_config(settings)).list_topics(timeout=15)
    missing = [name for name in physical if name not in metadata.topics]
    if missing:
        raise TopicError(f"no such topic(s) on {settings.broker}: {', '.join(missing)}")
    consumer = Consumer(
        consumer_config(settings, None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 50})
    )
    try:
        wanted = [
            TopicPartition(name, p, start_ms)
            for name in physical
            for p in sorted(metadata.topics[name].partitions)
        ]
        starts = consumer.offsets_for_times(wanted, timeout=30)
        assignment = [
            TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0)
            for tp in starts
        ]
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=30)[1]
            for tp in assignment
        }
        pending = {key for key, high in ends.items() if high > 0}
        empty = set(ends) - pending
        consumer.assign([tp for tp in assignment if (tp.topic, tp.partition) not in empty])
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BrokerError(f"reading the range did not finish in {timeout_s:.0f}s")
            for message in consumed(consumer.consume(1000, 0.5)):
                key = (message.topic(), message.partition())
                err = message.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(key)
                        continue
                    raise BrokerError(f"reading {key[0]}[{key[1]}]: {err}")
                if key not in pending:
                    continue
                _kind, ts = message.timestamp()
                if end_ms is not None and ts >= end_ms + grace_ms:
                    pending.discard(key)  # well past the range: this partition is done
                    continue
                if ts < start_ms or (end_ms is not None and ts >= end_ms):
                    continue
                yield RecordedMessage(
                    physical[key[0]], key[1], message.offset(), ts, message.key(), message.value()
                )
    finally:
        consumer.close()
