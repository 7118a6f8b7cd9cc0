"""Restore a partition's local state from the changelog topic.

The changelog holds, per partition, every changed profile (key = customer id) and after each
batch a meta record (key ``\\x00meta``). Replaying it from the local store's last changelog offset
to the end rebuilds exactly what the previous owner had persisted — on this machine after a
crash, or on another worker after a rebalance.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, TopicPartition

from rtim.core.profile import decode_profile
from rtim.errors import BrokerError
from rtim.kafka.config import consumer_config
from rtim.kafka.messages import consumed
from rtim.logs import get_logger
from rtim.settings import Settings
from rtim.worker.store import PartitionMeta, PartitionStore, timer_key

__all__ = ["META_KEY", "restore_partition"]

log = get_logger("changelog")

META_KEY = b"\x00meta"
_CHUNK = 5_000


def restore_partition(
    settings: Settings, topic: str, partition: int, store: PartitionStore, timeout_s: float = 300
) -> int | None:
    """Apply the changelog's tail to `store`. Returns records applied, None if store is ahead."""
    consumer = Consumer(
        consumer_config(settings, None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 50})
    )
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=30, cached=False
        )
        last = store.meta.changelog_offset
        if last >= high:
            log.warning(
                "local state is ahead of the changelog; rebuilding",
                partition=partition,
                local=last,
                changelog_end=high,
            )
            return None
        start = max(last + 1, low)
        if start >= high:
            return 0
        consumer.assign([TopicPartition(topic, partition, start)])
        applied = 0
        meta = PartitionMeta(
            store.meta.changelog_offset, dict(store.meta.inputs), store.meta.watermark
        )
        profiles: dict[str, bytes | None] = {}
        offset = start - 1
        deadline = time.monotonic() + timeout_s
        while offset < high - 1:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"restoring {topic}[{partition}] stalled at offset {offset} of {high}"
                )
            for message in consumed(consumer.consume(1000, 0.5)):
                err = message.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BrokerError(f"reading changelog {topic}[{partition}]: {err}")
                offset = message.offset()
                key = message.key()
                if key == META_KEY:
                    value = message.value()
                    if value is not None:  # the worker never deletes it; a stray tombstone
                        restored = PartitionMeta.decode(value)
                        meta.inputs, meta.watermark = restored.inputs, restored.watermark
                elif key is not None:
                    profiles[key.decode()] = message.value()
                meta.changelog_offset = offset
                applied += 1
                if len(profiles) >= _CHUNK:
                    _write(store, profiles, meta)
                    profiles = {}
        _write(store, profiles, meta)
        log.info("partition restored", partition=partition, records=applied, start=start, end=high)
        return applied
    finally:
        consumer.close()


def _write(store: PartitionStore, profiles: dict[str, bytes | None], meta: PartitionMeta) -> None:
    added: list[bytes] = []
    removed: list[bytes] = []
    for cid, value in profiles.items():
        old_raw = store.get(cid)
        old = {t[0] for t in decode_profile(old_raw).get("timers", ())} if old_raw else set()
        new = {t[0] for t in decode_profile(value).get("timers", ())} if value else set()
        added.extend(timer_key(d, cid) for d in new - old)
        removed.extend(timer_key(d, cid) for d in old - new)
    store.write(
        profiles,
        added,
        removed,
        PartitionMeta(meta.changelog_offset, dict(meta.inputs), meta.watermark),
    )
