"""`rtim produce --topic TOPIC FILE`: JSON lines → validated Avro records on a topic."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

if TYPE_CHECKING:
    from rtim.settings import Settings

__all__ = ["ProduceResult", "produce_lines", "register"]

_FLUSH_TIMEOUT_S = 60.0


def register(app: typer.Typer) -> None:
    """Add `rtim produce`."""
    app.command("produce")(produce)


def produce(
    topic: Annotated[
        str,
        typer.Option(
            "--topic", "-t", help="Logical topic (e.g. rtim.requests); the prefix is added."
        ),
    ],
    file: Annotated[
        str, typer.Argument(help="JSON-lines file (one record per line), or - for stdin.")
    ] = "-",
) -> None:
    """Send JSON lines to a topic as Avro records, validated as the worker validates input.

    The record type comes from the topic's declaration in topics/topics.yaml.

    Key: the record's customer_id (rtim.dlq: the dead letter's key; model topics: model_id).

    Kafka timestamp: the record's ts. Timestamps are epoch milliseconds or ISO-8601 text.

    Invalid lines are reported as `line N: reason` and not sent; the exit code is then 1.
    """
    from rtim.serde.topicmap import topic_schema
    from rtim.settings import get_settings

    topic_schema(topic)  # an unknown topic is reported before anything else
    settings = get_settings()
    with _open(file) as lines:
        result = produce_lines(settings, topic, lines, errors=sys.stderr)
    parts = [f"sent {_plural(result.sent, 'record')} to {topic}"]
    if result.invalid:
        parts.append(f"{_plural(result.invalid, 'invalid line')}")
    print(", ".join(parts), file=sys.stderr)
    if result.invalid:
        # SystemExit, not typer.Exit: cli.main runs click with standalone_mode=False,
        # where typer.Exit(1) would be returned as a value and the process would exit 0
        raise SystemExit(1)


@dataclass(slots=True)
class ProduceResult:
    """What `produce_lines` did: records delivered and the invalid lines with their reasons."""

    sent: int = 0
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)

    @property
    def invalid(self) -> int:
        """Number of invalid lines."""
        return len(self.invalid_lines)


def produce_lines(
    settings: Settings, logical_topic: str, lines: Iterable[str], *, errors: TextIO | None = None
) -> ProduceResult:
    """Validate each JSON line and send the valid ones to `logical_topic`; wait for delivery.

    Invalid lines are collected (and written to `errors` as ``line N: reason`` when given).
    Raises TopicError for an unknown or missing topic, BrokerError when delivery fails.
    """
    from confluent_kafka import Producer

    from rtim.core.validation import validate_record
    from rtim.errors import BrokerError, TopicError, ValidationError
    from rtim.kafka.admin import admin_client, list_topics
    from rtim.kafka.config import producer_config
    from rtim.serde.codec import Codec
    from rtim.serde.jsonio import parse_json_line
    from rtim.serde.schemas import get_schemas
    from rtim.serde.topicmap import topic_schema

    declared = topic_schema(logical_topic)
    if not declared.is_avro:
        raise TopicError(f"{logical_topic} holds rtim's internal state; it cannot be produced to")
    schemas = get_schemas()
    schema = schemas.current(declared.schema)
    physical = settings.topic(logical_topic)
    if physical not in list_topics(admin_client(settings)):
        raise TopicError(f"topic {physical} does not exist on the broker (run `rtim topics apply`)")

    codec = Codec.from_settings(settings, schemas)
    producer = Producer(producer_config(settings, **{"message.timeout.ms": 30000}))
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(error.str())

    result = ProduceResult()
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = parse_json_line(schema.name, line.rstrip("\r\n"), schemas)
                validate_record(
                    schema.name,
                    record,
                    now_ms=time.time_ns() // 1_000_000,
                    max_future_ms=settings.max_future_ms,
                )
                value = codec.encode(schema.name, record, topic=physical)
            except ValidationError as exc:  # a registry failure (SchemaError) aborts instead
                result.invalid_lines.append((number, str(exc)))
                if errors is not None:
                    print(f"line {number}: {exc}", file=errors)
                continue
            _send(
                producer, physical, declared.key_of(record), value, ts=_ts(record), cb=on_delivery
            )
            result.sent += 1
    except BaseException:
        producer.flush(_FLUSH_TIMEOUT_S)  # deliver what was handed over before the failure
        raise
    remaining = producer.flush(_FLUSH_TIMEOUT_S)
    if remaining:
        raise BrokerError(
            f"{remaining} records to {physical} were not delivered within {_FLUSH_TIMEOUT_S:g}s"
        )
    if failures:
        raise BrokerError(
            f"{len(failures)} of {result.sent} records to {physical} failed: {failures[0]}"
        )
    return result


def _send(producer: Any, topic: str, key: bytes | None, value: bytes, *, ts: int, cb: Any) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, timestamp=ts, on_delivery=cb)
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)
            continue
        producer.poll(0)
        return


def _ts(record: dict[str, Any]) -> int:
    """The record's event time for the Kafka timestamp (0 = now, for records without one)."""
    ts = record.get("ts")
    if ts is None and isinstance(record.get("decision"), dict):
        ts = record["decision"].get("ts")
    return ts if isinstance(ts, int) else 0


@contextmanager
def _open(file: str) -> Iterator[Iterable[str]]:
    from rtim.errors import ConfigError

    if file == "-":
        yield sys.stdin
        return
    try:
        handle = Path(file).open(encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle:
        yield _lines(handle, file)


def _lines(handle: TextIO, file: str) -> Iterator[str]:
    from rtim.errors import ConfigError

    try:
        yield from handle
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file} is not UTF-8 text: {exc.reason}") from None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
