"""`rtim tail TOPIC`: decoded records of a topic as JSON lines on stdout.

The consumer joins no consumer group and commits nothing: it assigns every partition itself,
from the beginning or from the end as it is when the command starts, so watching a topic never
disturbs the workers or waits for a group rebalance.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rtim.settings import Settings

__all__ = ["register", "tail_records"]

_BATCH = 500


def register(app: typer.Typer) -> None:
    """Add `rtim tail`."""
    app.command("tail")(tail)


def tail(
    topic: Annotated[str, typer.Argument(help="Logical topic, e.g. rtim.decisions.web.")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record, not the end.")
    ] = False,
    max_records: Annotated[
        int | None, typer.Option("--max", min=1, help="Exit after this many records.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.0, help="Exit after this many seconds (default: never)."),
    ] = None,
    meta: Annotated[
        bool,
        typer.Option(
            "--meta", help="Wrap each record with its partition, offset, key and timestamp."
        ),
    ] = False,
) -> None:
    """Print the records of a topic as JSON lines (bytes as base64, timestamps as epoch ms).

    Exits after --max records or --timeout seconds, whichever comes first.

    A record that cannot be decoded is printed as a line with an "error" field.
    """
    from rtim.settings import get_settings

    out = sys.stdout
    try:
        for line in tail_records(
            get_settings(),
            topic,
            from_beginning=from_beginning,
            max_records=max_records,
            timeout=timeout,
            meta=meta,
        ):
            out.write(line + "\n")
            out.flush()
    except BrokenPipeError:  # `rtim tail … | head`: the reader is gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        raise SystemExit(0) from None


def tail_records(
    settings: Settings,
    logical_topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    timeout: float | None = None,
    meta: bool = False,
) -> Iterator[str]:
    """Yield one JSON line per record of `logical_topic` until `max_records` or `timeout`.

    Raises TopicError for an unknown topic or one missing on the broker.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from rtim.errors import BrokerError, TopicError
    from rtim.kafka.admin import admin_client, list_topics
    from rtim.kafka.config import consumer_config
    from rtim.serde.codec import Codec
    from rtim.serde.topicmap import topic_schema

    declared = topic_schema(logical_topic)
    physical = settings.topic(logical_topic)
    state = list_topics(admin_client(settings)).get(physical)
    if state is None:
        raise TopicError(f"topic {physical} does not exist on the broker (run `rtim topics apply`)")
    codec = Codec.from_settings(settings) if declared.is_avro else None
    deadline = time.monotonic() + timeout if timeout is not None else None
    consumer = Consumer(
        consumer_config(
            settings, None, **{"enable.partition.eof": not from_beginning, "log_level": 0}
        )
    )
    partitions = [TopicPartition(physical, p) for p in range(state.partitions)]
    # Partitions whose records are printed. From the end, a partition goes live at its first
    # end-of-partition event: the end offset a broker reports (ListOffsets) is only a lower
    # bound on some brokers — Tansu answers the base offset of the last *batch* + 1 — while
    # the end seen by a fetch is exact, so records up to there are skipped.
    live: set[int] = set()
    try:
        for tp in partitions:
            if from_beginning:
                tp.offset = OFFSET_BEGINNING
                live.add(tp.partition)
            else:
                tp.offset = _end_offset(consumer, tp)
        consumer.assign(partitions)
        count = 0
        while max_records is None or count < max_records:
            wait = 1.0
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            want = _BATCH if max_records is None else min(_BATCH, max_records - count)
            for message in consumer.consume(num_messages=want, timeout=wait):
                error = message.error()
                if error is not None:
                    partition = message.partition()
                    if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                        live.add(partition)
                    elif error.fatal():
                        raise BrokerError(f"consuming {physical} failed: {error.str()}")
                    else:
                        print(f"rtim: warning: {error.str()}", file=sys.stderr)
                    continue
                if message.partition() not in live:
                    continue
                yield _line(message, codec, declared.schema, meta)
                count += 1
                if count == max_records:
                    return
    finally:
        consumer.close()


def _end_offset(consumer: Any, tp: Any) -> int:
    """The partition's end offset as the broker reports it (asked, not cached)."""
    from confluent_kafka import KafkaException

    from rtim.errors import BrokerError

    try:
        offsets = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
    except KafkaException as exc:
        raise BrokerError(f"cannot read the end offset of {tp.topic}: {exc}") from None
    if offsets is None:
        raise BrokerError(f"cannot read the end offset of {tp.topic}: timed out")
    return int(offsets[1])


def _line(message: Any, codec: Any, schema: str, meta: bool) -> str:
    from rtim.errors import DecodeError, SchemaError
    from rtim.serde.jsonio import record_to_json

    key: bytes | None = message.key()
    value: bytes | None = message.value()
    where = {"partition": message.partition(), "offset": message.offset()}
    if codec is None or value is None:  # internal (non-Avro) topic, or a tombstone
        raw = {**where, "key": _text(key), "value": _b64(value)}
        return json.dumps(raw, ensure_ascii=False)
    try:
        _name, record = codec.decode(value, expected=schema)
    except (DecodeError, SchemaError) as exc:
        failed = {"error": str(exc), **where, "key": _text(key), "value": _b64(value)}
        return json.dumps(failed, ensure_ascii=False)
    body = record_to_json(record)
    if meta:
        _kind, ts = message.timestamp()
        body = {**where, "timestamp": ts, "key": _text(key), "value": body}
    return json.dumps(body, ensure_ascii=False)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")
